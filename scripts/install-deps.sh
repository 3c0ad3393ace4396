#!/usr/bin/env bash
# Installs the real programs the tests and the demo run against, from Debian,
# only when they are missing: the remote-write receivers (prometheus,
# victoria-metrics) and, with --browser (what `make test` uses), chromium for
# the /sandboxes page test and kubectl for rendering deploy/kubernetes.
# Then the receivers Debian does not ship (Prometheus 3 for remote write 2.0,
# VictoriaMetrics 1.151 for zstd), built once from the Go module proxy into
# the cache of scripts/build-receiver.sh (about 10 minutes on 2 cores the
# first time, nothing after). Idempotent and quiet when everything is there
# already.
set -euo pipefail

build_receivers() {
	local here
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	for r in victoriametrics prometheus3; do
		bash "$here/build-receiver.sh" "$r" >/dev/null
	done
}

want=()
command -v prometheus >/dev/null 2>&1 || want+=(prometheus)
command -v victoria-metrics >/dev/null 2>&1 || want+=(victoria-metrics)
if [[ "${1:-}" == "--browser" ]]; then
	command -v chromium >/dev/null 2>&1 || want+=(chromium)
	command -v kubectl >/dev/null 2>&1 || want+=(kubernetes-client)
fi
if [[ ${#want[@]} -eq 0 ]]; then
	build_receivers
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: missing ${want[*]}; run as root or install them: apt-get install -y ${want[*]}" >&2
	exit 1
fi
echo "install-deps: apt-get install -y ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
build_receivers
