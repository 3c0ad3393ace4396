#!/usr/bin/env bash
# Runs a distributed remote-write receiver in its single-binary mode, in the
# foreground, with its data under DIR and every listener on 127.0.0.1, for
# tests, the demo and trying things by hand. The binary comes from
# scripts/build-receiver.sh (built once into its cache).
#
#   scripts/run-receiver.sh mimir  DIR PORT [EXTRA FLAGS...]
#   scripts/run-receiver.sh thanos DIR PORT [EXTRA FLAGS...]
#
# mimir: Grafana Mimir, -target=all (distributor, ingester, querier,
#   store-gateway, compactor, ...), filesystem block storage under DIR, the
#   in-memory ring store, replication factor 1, multi-tenancy on (tenant
#   header X-Scope-OrgID). Ports: PORT HTTP (write
#   http://127.0.0.1:PORT/api/v1/push, Prometheus API under /prometheus,
#   ready when GET /ready is 200), PORT+1 gRPC. Per-tenant limits go in
#   DIR/runtime.yaml (Mimir's runtime config, `overrides:` per tenant),
#   written empty when absent; EXTRA FLAGS go to mimir, e.g.
#   -ingester.out-of-order-time-window=1h.
# thanos: Thanos `receive` with a local TSDB under DIR/receive (tenant header
#   THANOS-TENANT, default tenant "default-tenant", each tenant's series
#   labelled tenant_id) plus `thanos query` reading it back over gRPC, with
#   tenancy enforced: a query carrying THANOS-TENANT sees only that tenant.
#   Receive runs as a router and ingestor (a hashring of one endpoint, itself),
#   the mode in which Thanos applies per-tenant head series limits. Its limits
#   (Thanos's limits configuration, `write:` with `global`, `default` and
#   per-tenant `tenants`) are read from DIR/limits.yaml when that file exists,
#   and re-read when it changes.
#   Ports: PORT remote write (http://127.0.0.1:PORT/api/v1/receive), PORT+1
#   query HTTP (Prometheus API, /-/ready), PORT+2 receive gRPC, PORT+3
#   receive HTTP (/-/ready), PORT+4 query gRPC, PORT+5 receive's Cap'n Proto
#   replication listener (unused with one receiver, but it listens, on
#   0.0.0.0:19391 by default, so two instances would collide). EXTRA FLAGS go to receive,
#   e.g. --tsdb.out-of-order.time-window=1h.
#
# Stop with SIGTERM (Ctrl-C): every process it started stops too.
set -euo pipefail

name=${1:?usage: run-receiver.sh mimir|thanos DIR PORT [FLAGS...]}
dir=${2:?usage: run-receiver.sh mimir|thanos DIR PORT [FLAGS...]}
port=${3:?usage: run-receiver.sh mimir|thanos DIR PORT [FLAGS...]}
shift 3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$(bash "$here/build-receiver.sh" "$name")
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
h=127.0.0.1

case "$name" in
mimir)
	[[ -f $dir/runtime.yaml ]] || echo "overrides: {}" >"$dir/runtime.yaml"
	cd "$dir" # Mimir writes a few files (activity log) relative to its cwd
	rings=()
	for r in ingester.ring distributor.ring querier.ring compactor.ring store-gateway.sharding-ring ruler.ring query-scheduler.ring overrides-exporter.ring alertmanager.sharding-ring; do
		rings+=("-$r.store=inmemory" "-$r.instance-addr=$h")
	done
	exec "$bin" -target=all \
		-server.http-listen-address=$h -server.http-listen-port="$port" \
		-server.grpc-listen-address=$h -server.grpc-listen-port=$((port + 1)) \
		"${rings[@]}" \
		-ingester.ring.replication-factor=1 -store-gateway.sharding-ring.replication-factor=1 \
		-ingester.ring.min-ready-duration=0s -ingester.ring.final-sleep=0s \
		-blocks-storage.backend=filesystem -blocks-storage.filesystem.dir="$dir/blocks" \
		-blocks-storage.tsdb.dir="$dir/tsdb" -blocks-storage.bucket-store.sync-dir="$dir/tsdb-sync" \
		-compactor.data-dir="$dir/compactor" \
		-ruler-storage.backend=filesystem -ruler-storage.filesystem.dir="$dir/rules" -ruler.rule-path="$dir/ruler" \
		-alertmanager-storage.backend=filesystem -alertmanager-storage.filesystem.dir="$dir/alertmanager" \
		-query-frontend.instance-addr=$h \
		-activity-tracker.filepath="$dir/activity.log" \
		-runtime-config.file="$dir/runtime.yaml" \
		-auth.multitenancy-enabled=true -usage-stats.enabled=false -log.level=warn \
		"$@"
	;;
thanos)
	mkdir -p "$dir/receive"
	limits=()
	[[ -f $dir/limits.yaml ]] && limits=("--receive.limits-config-file=$dir/limits.yaml")
	self=$h:$((port + 2))
	# query dies with this script (setpriv's pdeathsig), which becomes receive.
	pdeath=()
	command -v setpriv >/dev/null && pdeath=(setpriv --pdeathsig KILL)
	"${pdeath[@]}" "$bin" query \
		--http-address=$h:$((port + 1)) --grpc-address=$h:$((port + 4)) \
		--endpoint=$h:$((port + 2)) \
		--query.enforce-tenancy --query.tenant-header=THANOS-TENANT \
		--query.replica-label=replica --log.level=warn &
	exec "$bin" receive \
		--tsdb.path="$dir/receive" \
		--remote-write.address=$h:"$port" --grpc-address=$h:$((port + 2)) --http-address=$h:$((port + 3)) \
		--receive.capnproto-address=$h:$((port + 5)) \
		--label='replica="r1"' \
		--receive.hashrings="[{\"endpoints\":[{\"address\":\"$self\",\"capnproto_address\":\"$h:$((port + 5))\"}]}]" \
		--receive.local-endpoint="$self" \
		"${limits[@]}" \
		--receive.tenant-header=THANOS-TENANT --receive.default-tenant-id=default-tenant \
		--log.level=warn \
		"$@"
	;;
*)
	echo "run-receiver: unknown receiver $name (mimir, thanos)" >&2
	exit 2
	;;
esac
