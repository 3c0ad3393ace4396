#!/usr/bin/env bash
# Installs the real programs the tests and the demo run against, from Debian,
# only when they are missing: the remote-write receivers (prometheus,
# victoria-metrics) and curl (README's quick start) and, with --browser (what
# `make test` uses), chromium for the /sandboxes page test, kubectl for
# rendering deploy/kubernetes and buildah + runc for `make image` and its
# test. Then the receivers Debian does not ship (Prometheus 3 for remote
# write 2.0, VictoriaMetrics 1.151 for zstd), built once from the Go module
# proxy into the cache of scripts/build-receiver.sh (about 10 minutes on 2
# cores the first time, nothing after). Idempotent and quiet when everything
# is there already.
#
# Fresh cloud machines often run apt at boot (unattended-upgrades,
# cloud-init): when another process holds the apt/dpkg lock, this waits for
# it (up to INSTALL_DEPS_LOCK_TIMEOUT seconds, default 600), saying who holds
# it, instead of failing at once; apt-get itself gets the same timeout
# (-o DPkg::Lock::Timeout) for the window between the check and its start.
#
# For tests: INSTALL_DEPS_WANT="pkg ..." replaces the computed list,
# INSTALL_DEPS_LOCKS="file ..." the lock files watched, and
# INSTALL_DEPS_DRY_RUN=1 prints the apt-get commands instead of running them
# (and builds no receiver).
set -euo pipefail

build_receivers() {
	[[ -n ${INSTALL_DEPS_DRY_RUN:-} ]] && return 0
	local here
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	for r in victoriametrics prometheus3; do
		bash "$here/build-receiver.sh" "$r" >/dev/null
	done
}

timeout=${INSTALL_DEPS_LOCK_TIMEOUT:-600}
read -r -a locks <<<"${INSTALL_DEPS_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock}"
dry=${INSTALL_DEPS_DRY_RUN:-}

want=()
if [[ -n ${INSTALL_DEPS_WANT:-} ]]; then
	read -r -a want <<<"$INSTALL_DEPS_WANT"
else
	command -v prometheus >/dev/null 2>&1 || want+=(prometheus)
	command -v victoria-metrics >/dev/null 2>&1 || want+=(victoria-metrics)
	command -v curl >/dev/null 2>&1 || want+=(curl ca-certificates)
	if [[ "${1:-}" == "--browser" ]]; then
		command -v chromium >/dev/null 2>&1 || want+=(chromium)
		command -v kubectl >/dev/null 2>&1 || want+=(kubernetes-client)
		command -v buildah >/dev/null 2>&1 || want+=(buildah)
		command -v runc >/dev/null 2>&1 || want+=(runc)
	fi
fi
if [[ ${#want[@]} -eq 0 ]]; then
	build_receivers
	exit 0
fi

if [[ -z $dry && $(id -u) -ne 0 ]]; then
	echo "install-deps: missing ${want[*]}; run as root or install them: apt-get install -y ${want[*]}" >&2
	exit 1
fi

# lock_holder prints "PID (command)" of a process holding one of the lock
# files (a POSIX lock, as apt and dpkg take, listed in /proc/locks), or
# fails when none is held.
lock_holder() {
	local f ino pid
	for f in "${locks[@]}"; do
		[[ -e $f ]] || continue
		ino=$(stat -c %i "$f")
		# "1: POSIX ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF"; a blocked
		# waiter's line has "->" after the number, shifting the fields.
		pid=$(awk -v ino="$ino" '{ o = ($2 == "->") ? 1 : 0; n = split($(6+o), a, ":"); if (a[n] == ino) { print $(5+o); exit } }' /proc/locks)
		if [[ -n $pid ]]; then
			echo "$pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo unknown))"
			return 0
		fi
	done
	return 1
}

wait_for_apt() {
	local waited=0 holder
	while holder=$(lock_holder); do
		if ((waited == 0)); then
			echo "install-deps: the apt/dpkg lock is held by process $holder (often unattended-upgrades or cloud-init at boot); waiting up to ${timeout}s..." >&2
		elif ((waited % 30 == 0)); then
			echo "install-deps: still waiting for process $holder (${waited}s)" >&2
		fi
		if ((waited >= timeout)); then
			echo "install-deps: the apt/dpkg lock is still held after ${timeout}s by process $holder; retry later or raise INSTALL_DEPS_LOCK_TIMEOUT" >&2
			exit 1
		fi
		sleep 1
		waited=$((waited + 1))
	done
	if ((waited > 0)); then
		echo "install-deps: lock released after ${waited}s" >&2
	fi
}

apt() {
	if [[ -n $dry ]]; then
		echo "install-deps: would run: apt-get $*" >&2
		return 0
	fi
	apt-get "$@"
}

echo "install-deps: apt-get install -y ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
wait_for_apt
apt -o DPkg::Lock::Timeout="$timeout" update -qq >/dev/null
apt -o DPkg::Lock::Timeout="$timeout" install -y -qq --no-install-recommends "${want[@]}" >/dev/null
build_receivers
