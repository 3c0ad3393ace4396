package tenant

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// TestRouterGroupsPerTenantAcrossRound: a round handed over in the
// forwarder's chunks of 8192 series, its tenants interleaved sandbox by
// sandbox, becomes ceil(share/8192) WAL groups per tenant (read back from
// the WAL's records), not one per chunk per tenant, all written with one
// fsync (wal.fsync append); the chunks' reused label and sample buffers are copied, so every
// series arrives once, intact, in its own tenant's requests.
// Long because building the interleaved round and checking every tenant's
// groups and requests are one case.
func TestRouterGroupsPerTenantAcrossRound(t *testing.T) {
	rc := newReceiver(t, nil).Start()
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace"})
	require.Equal(t, "append", fx.walCfg.Fsync)
	// Sandboxes of 100 series in the order a, b, a, c, a, b, ...:
	// shares a 15,000, b 10,500 and c 1,500 series, in 4 chunks.
	pattern := []string{"a", "b", "a", "c", "a", "b", "a", "b", "a", "a", "b", "a", "b", "a", "b", "a", "b", "a"}
	var round []series.Series
	share := map[string]int{}
	for sb := 0; len(round) < 27_000; sb++ {
		ns := pattern[sb%len(pattern)]
		for i := range 100 {
			round = append(round, mkSeries("m", []series.Sample{{Timestamp: 1000, Value: float64(len(round))}},
				"cri_namespace", ns, "sandbox", fmt.Sprint(sb), "idx", fmt.Sprint(i)))
			share[ns]++
		}
	}
	require.Equal(t, map[string]int{"a": 15_000, "b": 10_500, "c": 1_500}, share)

	// The forwarder's hand-over: labels and samples written into buffers
	// reused by the next chunk (overwritten after each call here).
	const chunk = 8192
	arena := make([]labels.Label, 0, chunk*4)
	samples := make([]series.Sample, 0, chunk)
	buf := make([]series.Series, 0, chunk)
	for lo := 0; lo < len(round); lo += chunk {
		arena, samples, buf = arena[:0], samples[:0], buf[:0]
		for _, s := range round[lo:min(lo+chunk, len(round))] {
			l0, s0 := len(arena), len(samples)
			arena = append(arena, s.Labels...)
			samples = append(samples, s.Samples...)
			buf = append(buf, series.Series{Labels: arena[l0:], Samples: samples[s0:]})
		}
		require.NoError(t, fx.r.Append(context.Background(), buf))
		for i := range arena {
			arena[i] = labels.Label{Name: "poison", Value: "x"}
		}
		for i := range samples {
			samples[i] = series.Sample{Timestamp: -1, Value: -1}
		}
	}
	require.NoError(t, fx.r.Commit(context.Background()))

	require.Equal(t, 1.0, metric(t, fx.reg, "kata_monitor_wal_fsync_duration_seconds", map[string]string{"endpoint": "ep"}),
		"one WAL write and fsync for the round, every tenant's groups in it")
	// Without gathering: a, b and c each in all 4 chunks, 4 groups each.
	groups := walGroups(t, filepath.Join(fx.walCfg.Dir, "ep", remotewrite.TenantWALDir))
	require.Equal(t, 2, groups["a"], "ceil(15000/8192)")
	require.Equal(t, 2, groups["b"], "ceil(10500/8192)")
	require.Equal(t, 1, groups["c"], "ceil(1500/8192)")

	fx.run(t)
	require.Eventually(t, func() bool {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", nil) == float64(len(round))
	}, 20*time.Second, 5*time.Millisecond)
	got := map[string]int{}
	for _, g := range rc.Requests() {
		tn := g.Header.Get("X-Scope-OrgID")
		for _, ts := range g.Req.Timeseries {
			require.Equal(t, tn, namespaceOf(ts), "a request mixes tenants")
			got[tn]++
		}
	}
	require.Equal(t, share, got)
	stored := rc.Stored()
	require.Len(t, stored, len(round), "every series once")
	for i, s := range round {
		k := labelKey(s.Labels)
		require.Equal(t, []series.Sample{{Timestamp: 1000, Value: float64(i)}}, stored[k], k)
	}
}

// walGroups counts the WAL groups of each tenant in the segments of dir.
func walGroups(t *testing.T, dir string) map[string]int {
	t.Helper()
	idx, err := disk.ListSegments(dir)
	require.NoError(t, err)
	seen := map[string]map[uint64]bool{}
	for _, k := range idx {
		fi, err := os.Stat(wlog.SegmentName(dir, k))
		require.NoError(t, err)
		c, err := disk.OpenCursor(dir, k, fi.Size(), slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		for b, err := c.Next(); err == nil; b, err = c.Next() {
			if seen[b.Tenant] == nil {
				seen[b.Tenant] = map[uint64]bool{}
			}
			seen[b.Tenant][b.Group] = true
		}
		require.NoError(t, c.Close())
	}
	out := map[string]int{}
	for tn, g := range seen {
		out[tn] = len(g)
	}
	return out
}
