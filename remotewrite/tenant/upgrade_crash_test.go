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

// oldLayout writes, under dir/ep/, the per-tenant queue directories of the
// layout before the shared WAL: per tenant, round 1 sent and acknowledged,
// rounds 2 and 3 pending, written as plain queues (the format db4ecdf
// wrote them in: a plain queue's records and ack file are unchanged).
func oldLayout(t *testing.T, dir string, tenants ...string) {
	t.Helper()
	old := newReceiver(t, nil).Start()
	for _, tn := range tenants {
		walCfg := config.DefaultWALConfig()
		walCfg.Dir = filepath.Join(dir, "old")
		cfg := config.Config{URL: old.URL(), Name: "t"}
		q, err := remotewrite.New(cfg, walCfg, rwtest.Logger(t), prometheus.NewRegistry())
		require.NoError(t, err)
		require.NoError(t, q.Append(context.Background(), nsRound(1000, 4, tn)))
		stop := rwtest.Run(t, q.Run)
		require.Eventually(t, func() bool { return q.PendingBlocks() == 0 }, 20*time.Second, 5*time.Millisecond)
		require.NoError(t, stop())
		q, err = remotewrite.New(cfg, walCfg, rwtest.Logger(t), nil)
		require.NoError(t, err)
		for ts := int64(2000); ts <= 3000; ts += 1000 {
			require.NoError(t, q.Append(context.Background(), nsRound(ts, 4, tn)))
		}
		require.NoError(t, q.Close())
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "ep"), 0o750))
		require.NoError(t, os.Rename(filepath.Join(dir, "old", "t"), filepath.Join(dir, "ep", dirOf(tn))))
	}
}

// TestRouterMigrationCrash: a crash in the middle of moving the per-tenant
// directories into the shared WAL (after their blocks were appended to it,
// before or while the directories were removed) loses nothing: at the
// next start the directories left are moved again, and every pending
// sample of every tenant arrives, some twice (at-least-once), none of
// round 1 (acknowledged before the upgrade) unless its directory lost its
// ack file.
func TestRouterMigrationCrash(t *testing.T) {
	tenants := []string{"ns-a", "tenants.wal", "x(1)*'!"}
	for _, tc := range []struct {
		name string
		keep func(t *testing.T, from, to string) // what of a migrated directory the crash left
	}{
		{"directories not yet removed", func(t *testing.T, from, to string) { copyTree(t, from, to, nil) }},
		{"removal cut short after the lock and ack files", func(t *testing.T, from, to string) {
			copyTree(t, from, to, func(name string) bool { return name != "lock" && name != "ack" })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			oldLayout(t, dir, tenants...)
			saved := filepath.Join(t.TempDir(), "saved")
			copyTree(t, filepath.Join(dir, "ep"), saved, nil)

			fx := newRouterFixture(t, "http://127.0.0.1:1", dir, config.TenantConfig{Label: "cri_namespace"})
			require.NoError(t, fx.r.Close()) // moved, then the crash
			for _, tn := range tenants {
				tc.keep(t, filepath.Join(saved, dirOf(tn)), filepath.Join(dir, "ep", dirOf(tn)))
			}

			rc := newReceiver(t, nil).Start()
			fx = newRouterFixture(t, rc.URL(), dir, config.TenantConfig{Label: "cri_namespace"})
			entries, err := os.ReadDir(filepath.Join(dir, "ep"))
			require.NoError(t, err)
			require.Len(t, entries, 1, "the per-tenant directories are gone")
			fx.run(t)
			require.Eventually(t, func() bool {
				for _, tn := range tenants {
					if metric(t, fx.reg, "kata_monitor_wal_pending_samples", map[string]string{"tenant": tn}) > 0 {
						return false
					}
				}
				return true
			}, 20*time.Second, 5*time.Millisecond)
			got := map[string]map[int64]int{}
			for _, g := range rc.Requests() {
				for _, ts := range g.Req.Timeseries {
					tn := namespaceOf(ts)
					require.Equal(t, g.Header.Get("X-Scope-OrgID"), tn, "sent under its own tenant")
					if got[tn] == nil {
						got[tn] = map[int64]int{}
					}
					got[tn][ts.Samples[0].Timestamp]++
				}
			}
			for _, tn := range tenants {
				require.GreaterOrEqual(t, got[tn][2000], 4, "tenant %s round 2", tn)
				require.GreaterOrEqual(t, got[tn][3000], 4, "tenant %s round 3", tn)
			}
		})
	}
}

// copyTree copies the regular files of from (recursively) into to,
// those keep accepts (nil: all).
func copyTree(t *testing.T, from, to string, keep func(name string) bool) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o750)
		}
		if keep != nil && !keep(d.Name()) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o640)
	}))
}
