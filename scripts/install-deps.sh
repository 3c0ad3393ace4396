#!/usr/bin/env bash
# Installs the real programs the tests and the demo run against, from Debian,
# only when they are missing: the remote-write receivers (prometheus,
# victoria-metrics) and, with --browser (what `make test` uses), chromium for
# the /sandboxes page test and kubectl for rendering deploy/kubernetes.
# Idempotent and quiet when everything is there already.
set -euo pipefail

want=()
command -v prometheus >/dev/null 2>&1 || want+=(prometheus)
command -v victoria-metrics >/dev/null 2>&1 || want+=(victoria-metrics)
if [[ "${1:-}" == "--browser" ]]; then
	command -v chromium >/dev/null 2>&1 || want+=(chromium)
	command -v kubectl >/dev/null 2>&1 || want+=(kubernetes-client)
fi
[[ ${#want[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: missing ${want[*]}; run as root or install them: apt-get install -y ${want[*]}" >&2
	exit 1
fi
echo "install-deps: apt-get install -y ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
