package tenant

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// TestStoreHold: held copies are exact across block boundaries, for
// series without labels or samples and for label sets larger than a
// block, and stay exact when released blocks are reused.
func TestStoreHold(t *testing.T) {
	names := make([]string, labelsPerBlock+1)
	for i := range names {
		names[i] = fmt.Sprint("l", i)
	}
	mk := func(nLabels, nSamples int, tag string) series.Series {
		s := series.Series{Metadata: &series.Metadata{Family: tag}}
		for i := range nLabels {
			s.Labels = append(s.Labels, labels.Label{Name: names[i], Value: tag})
		}
		for i := range nSamples {
			s.Samples = append(s.Samples, series.Sample{Timestamp: int64(i), Value: float64(len(tag))})
		}
		return s
	}
	tests := map[string][]int{ // labels per series (1 sample each, 2 for odd counts)
		"empty":            {0, 0, 0},
		"small":            {3, 5, 1},
		"block boundaries": {labelsPerBlock - 1, 2, labelsPerBlock, 1, 700, 700, 700},
		"larger than one":  {4, labelsPerBlock + 1, 4},
	}
	st := newStore()
	for name, sizes := range tests {
		t.Run(name, func(t *testing.T) {
			for round := range 3 {
				var in []series.Series
				var h held
				for i := range seriesPerBlock + 10 {
					n := sizes[i%len(sizes)]
					s := mk(n, 1+n%2, fmt.Sprint(name, round, i))
					in = append(in, s)
					st.hold(&h, s)
				}
				require.Equal(t, len(in), h.n)
				got := st.seriesOf(&h)
				require.Len(t, got, len(in))
				for i := range in {
					require.True(t, slices.Equal(in[i].Labels, got[i].Labels), i)
					require.True(t, slices.Equal(in[i].Samples, got[i].Samples), i)
					require.Same(t, in[i].Metadata, got[i].Metadata)
				}
				st.release(&h)
				require.Zero(t, h.n)
			}
		})
	}
}

// TestRouterHeldBudget: with more tenants interleaved than the budget
// holds, Append never holds more than maxHeldSeries (the tenant holding
// the most is appended early), and every series still reaches its tenant
// once.
func TestRouterHeldBudget(t *testing.T) {
	old := maxHeldSeries
	maxHeldSeries = 300
	t.Cleanup(func() { maxHeldSeries = old })
	rc := newReceiver(t).start()
	fx := newRouterFixture(t, rc.url(), "", config.TenantConfig{Label: "cri_namespace"})
	var round []series.Series
	for sb := range 40 { // 5 tenants, 50 series per sandbox
		for i := range 50 {
			round = append(round, mkSeries("m", []series.Sample{{Timestamp: 1000, Value: 1}},
				"cri_namespace", fmt.Sprint("t", sb%5), "sandbox", fmt.Sprint(sb), "idx", fmt.Sprint(i)))
		}
	}
	for lo := 0; lo < len(round); lo += 128 {
		require.NoError(t, fx.r.Append(context.Background(), round[lo:min(lo+128, len(round))]))
		fx.r.mu.Lock()
		held := fx.r.heldSeries
		fx.r.mu.Unlock()
		require.LessOrEqual(t, held, 300)
	}
	require.NoError(t, fx.r.Commit(context.Background()))
	groups := metric(t, fx.reg, "kata_monitor_wal_fsync_duration_seconds", nil)
	require.Greater(t, groups, 5.0, "the budget made groups of less than a tenant's share")

	fx.run(t)
	require.Eventually(t, func() bool {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", nil) == float64(len(round))
	}, 20*time.Second, 5*time.Millisecond)
	got := map[string]int{}
	for _, g := range rc.requests() {
		for _, ts := range g.series {
			require.Equal(t, g.header.Get("X-Scope-OrgID"), namespaceOf(ts))
			got[namespaceOf(ts)]++
		}
	}
	require.Equal(t, map[string]int{"t0": 400, "t1": 400, "t2": 400, "t3": 400, "t4": 400}, got)
	require.Len(t, rc.stored(), len(round), "every series once")
}
