#!/usr/bin/env bash
# Builds a remote-write receiver that Debian 12 does not ship, from the Go
# module proxy, once, into a cache that tests, the demo and the benchmark
# harness reuse. Prints the binary's path on stdout; progress goes to stderr.
#
#   scripts/build-receiver.sh prometheus3      # Prometheus 3 (remote write 2.0 receiver)
#   scripts/build-receiver.sh victoriametrics  # VictoriaMetrics (zstd on /api/v1/write)
#   scripts/build-receiver.sh mimir            # Grafana Mimir, single binary
#   scripts/build-receiver.sh thanos           # Thanos (receive + query)
#
# The cache is $KATA_MONITOR_CACHE (default ~/.cache/kata-monitor)/receivers/
# NAME-VERSION/. Delete that directory to rebuild. Versions are pinned here;
# docs/receivers.md says why each one.
#
# Modules with replace directives cannot be `go install`ed, so every receiver
# is built the same way: `go mod download -json MODULE@VERSION` names the
# module's zip in the module cache, which is unpacked and built in its own
# directory (its go.mod and go.sum decide the dependencies).
set -euo pipefail

name=${1:?usage: build-receiver.sh prometheus3|victoriametrics|mimir|thanos}
toolchain= tags= suffix=
case "$name" in
prometheus3)
	module=github.com/prometheus/prometheus version=v0.316.0 pkg=./cmd/prometheus bin=prometheus ;;
victoriametrics)
	module=github.com/VictoriaMetrics/VictoriaMetrics version=v1.151.0 pkg=./app/victoria-metrics bin=victoria-metrics ;;
mimir)
	module=github.com/grafana/mimir version=v1.3.1-0.20260423142704-aced80d74930 pkg=./cmd/mimir bin=mimir ;;
thanos)
	# Thanos v0.42.5 needs Go 1.26.10; this machine's Go fetches that toolchain.
	# Its releases are built with the build tags of its .promu.yml, netgo and
	# slicelabels: Thanos hands Prometheus's labels.Labels to its gRPC codec
	# as a slice of label pairs, which holds only with slicelabels. Without
	# the tag (Prometheus's default is stringlabels) `thanos receive` reads
	# garbage sizes and panics in grpc's buffer pool as soon as `thanos
	# query` calls its Store API. The tags name the cache directory so that
	# a binary built without them is never reused.
	module=github.com/thanos-io/thanos version=v0.42.5 pkg=./cmd/thanos bin=thanos toolchain=go1.27.3
	tags=netgo,slicelabels suffix=-slicelabels ;;
*)
	echo "build-receiver: unknown receiver $name (prometheus3, victoriametrics, mimir, thanos)" >&2
	exit 2 ;;
esac

cache=${KATA_MONITOR_CACHE:-$HOME/.cache/kata-monitor}/receivers/$name-$version$suffix
if [[ -x $cache/$bin ]]; then
	echo "$cache/$bin"
	exit 0
fi
mkdir -p "$cache"
# One build per receiver at a time (make test and make demo may race).
exec 9>"$cache/.lock"
flock 9
if [[ -x $cache/$bin ]]; then
	echo "$cache/$bin"
	exit 0
fi

export GOTOOLCHAIN=${toolchain:-${GOTOOLCHAIN:-auto}}
echo "build-receiver: $module@$version ($pkg): download" >&2
zip=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Zip": "\(.*\)",\{0,1\}$/\1/p')
if [[ -z $zip || ! -f $zip ]]; then
	echo "build-receiver: go mod download did not name a zip for $module@$version" >&2
	exit 1
fi
src=$(mktemp -d "${TMPDIR:-/tmp}/build-receiver-$name.XXXXXX")
trap 'rm -rf "$src"' EXIT
(cd "$src" && unzip -q "$zip")
dir="$src/$module@$version"
chmod -R u+w "$dir"
echo "build-receiver: $name: go build (several minutes on 2 cores the first time; cached after)" >&2
start=$SECONDS
(cd "$dir" && CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod go build -trimpath ${tags:+-tags "$tags"} -o "$cache/$bin.tmp" "$pkg")
mv "$cache/$bin.tmp" "$cache/$bin"
echo "build-receiver: $name built in $((SECONDS - start)) s: $cache/$bin" >&2
echo "$cache/$bin"
