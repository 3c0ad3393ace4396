#!/usr/bin/env bash
# Usage: scripts/image.sh BINARY IMAGE [VERSION] [COMMIT]
# Builds the kata-monitor container image with buildah, without a Docker
# engine or any daemon: FROM scratch, the static BINARY as /kata-monitor, the
# host's CA bundle (for https receivers), nothing else (no shell, no package
# manager), user 65532 (non-root; the DaemonSet runs it as root only because
# the shim and CRI sockets are root-only), listening on :8090. The image goes
# to buildah's local storage as IMAGE; IMAGE_ARCHIVE=FILE also writes it as
# an OCI archive. Push it with `buildah push IMAGE docker://REGISTRY/...`.
set -euo pipefail
bin=$1
image=$2
version=${3:-dev}
commit=${4:-unknown}
ca=/etc/ssl/certs/ca-certificates.crt

if ! command -v buildah >/dev/null 2>&1; then
	echo "image: buildah is not installed: run scripts/install-deps.sh --browser as root (or apt-get install -y buildah)" >&2
	exit 1
fi
[[ -x $bin ]] || { echo "image: $bin missing: make build" >&2; exit 1; }
[[ -r $ca ]] || { echo "image: $ca missing: apt-get install -y ca-certificates" >&2; exit 1; }
if file "$bin" 2>/dev/null | grep -q "dynamically linked"; then
	echo "image: $bin is dynamically linked; build it with CGO_ENABLED=0 (make build does)" >&2
	exit 1
fi

ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null' EXIT
buildah copy --quiet --chmod 0755 "$ctr" "$bin" /kata-monitor >/dev/null
buildah copy --quiet --chmod 0644 "$ctr" "$ca" /etc/ssl/certs/ca-certificates.crt >/dev/null
buildah config \
	--user 65532:65532 \
	--workingdir / \
	--entrypoint '["/kata-monitor"]' \
	--cmd '--listen-address=:8090' \
	--port 8090/tcp \
	--label org.opencontainers.image.title=kata-monitor \
	--label org.opencontainers.image.source=https://github.com/kata-containers/kata-monitor \
	--label org.opencontainers.image.version="$version" \
	--label org.opencontainers.image.revision="$commit" \
	"$ctr"
buildah commit --quiet --format oci --rm "$ctr" "$image" >/dev/null
trap - EXIT
echo "image: built $image ($(buildah images --format '{{.Size}}' "$image" | head -1))"
if [[ -n ${IMAGE_ARCHIVE:-} ]]; then
	rm -f "$IMAGE_ARCHIVE"
	buildah push --quiet "$image" "oci-archive:$IMAGE_ARCHIVE:$image" >/dev/null
	echo "image: wrote $IMAGE_ARCHIVE"
fi
