package tenant

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
)

// TestRouterMovesPerTenantDirsIntoSharedWAL: the per-tenant queue
// directories of the layout before the shared WAL (wal.dir/<endpoint>/
// <escaped tenant>/, each its own WAL with round 1 acknowledged and rounds
// 2 and 3 pending) are moved into the shared WAL at start and removed;
// each tenant's pending rounds then go out under its tenant, in order,
// each sample once, and round 1 is not sent again.
func TestRouterMovesPerTenantDirsIntoSharedWAL(t *testing.T) {
	dir := t.TempDir()
	old := newReceiver(t, nil).Start()
	for _, tn := range []string{"ns-a", "ns.c"} {
		// What a release before the shared WAL left: a queue per tenant
		// in <endpoint>/<escaped tenant>, written as a plain queue.
		// (Written under a valid endpoint name, then moved.)
		walCfg := config.DefaultWALConfig()
		walCfg.Dir = filepath.Join(dir, "old")
		q, err := remotewrite.New(config.Config{URL: old.URL(), Name: "t"}, walCfg, rwtest.Logger(t), prometheus.NewRegistry())
		require.NoError(t, err)
		require.NoError(t, q.Append(context.Background(), nsRound(1000, 4, tn)))
		stop := rwtest.Run(t, q.Run)
		require.Eventually(t, func() bool { return q.PendingBlocks() == 0 }, 20*time.Second, 5*time.Millisecond)
		require.NoError(t, stop())
		q, err = remotewrite.New(config.Config{URL: old.URL(), Name: "t"}, walCfg, rwtest.Logger(t), nil)
		require.NoError(t, err)
		for ts := int64(2000); ts <= 3000; ts += 1000 {
			require.NoError(t, q.Append(context.Background(), nsRound(ts, 4, tn)))
		}
		require.NoError(t, q.Close())
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "ep"), 0o750))
		require.NoError(t, os.Rename(filepath.Join(dir, "old", "t"), filepath.Join(dir, "ep", dirOf(tn))))
	}
	require.DirExists(t, filepath.Join(dir, "ep", "ns%2ec"))

	rc := newReceiver(t, nil).Start()
	fx := newRouterFixture(t, rc.URL(), dir, config.TenantConfig{Label: "cri_namespace"})
	require.Equal(t, []string{"ns-a", "ns.c"}, fx.r.Tenants(), "the moved backlogs' tenants are opened")
	entries, err := os.ReadDir(filepath.Join(dir, "ep"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "the per-tenant directories are gone")
	require.Equal(t, remotewrite.TenantWALDir, entries[0].Name())
	fx.run(t)
	require.Eventually(t, func() bool {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "ns-a"}) == 8 &&
			metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "ns.c"}) == 8
	}, 20*time.Second, 5*time.Millisecond)
	got := map[string][]int64{}
	for _, g := range rc.Requests() {
		for _, ts := range g.Req.Timeseries {
			require.Equal(t, g.Header.Get("X-Scope-OrgID"), namespaceOf(ts), "sent under its own tenant")
			if ts.Get("idx") == "0" {
				got[namespaceOf(ts)] = append(got[namespaceOf(ts)], ts.Samples[0].Timestamp)
			}
		}
	}
	require.Equal(t, map[string][]int64{"ns-a": {2000, 3000}, "ns.c": {2000, 3000}}, got, "pending rounds once, in order; round 1 not again")
	require.Zero(t, metric(t, fx.reg, "kata_monitor_wal_dropped_samples_total", nil))
}
