#!/usr/bin/env bash
# Usage: scripts/gobuild.sh WHAT GO-BUILD-ARGS... PACKAGE
# `go build -v` with visible progress: it says what is being built and how
# many packages the target needs, then a line every 25 packages compiled, so
# a cold first build (minutes on 2 cores: gRPC, the Prometheus libraries and
# their dependencies are several hundred packages) is seen moving.
# Cached builds print nothing but the first line. The full output is shown if
# the build fails; the temporary log is removed either way.
set -euo pipefail
what=$1
shift
pkg=${*: -1}
total=$(go list -deps "$pkg" 2>/dev/null | wc -l || echo "?")
log=$(mktemp "${TMPDIR:-/tmp}/kata-monitor-build.XXXXXX")
trap 'rm -f "$log"' EXIT
echo "build: $what ($pkg, $total packages with the standard library; a first build compiles them all and takes minutes, later ones seconds)"
set +e
go build -v "$@" 2>"$log" &
pid=$!
shown=0
while kill -0 "$pid" 2>/dev/null; do
	n=$(wc -l <"$log")
	if ((n >= shown + 25)); then
		shown=$((n / 25 * 25))
		echo "  compiled $shown of at most $total packages..."
	fi
	sleep 1
done
wait "$pid"
rc=$?
set -e
if ((rc != 0)); then
	cat "$log" >&2
	echo "build: $what failed" >&2
	exit "$rc"
fi
n=$(wc -l <"$log")
((n > 0)) && echo "  compiled $n packages: $what is ready"
exit 0
