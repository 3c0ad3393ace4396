package tenant

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// TestRouterStuckTenantSharedBudget: with the whole wal.max_size shared,
// a tenant its receiver answers 429 forever fills it; the oldest
// segments go, its drops are counted under disk_budget on its own
// metrics (appended = dropped + pending, nothing sent), the WAL's files
// stay under the budget, and a tenant that keeps up never loses a sample.
func TestRouterStuckTenantSharedBudget(t *testing.T) {
	rc := newReceiver(t, func(_ int, r *http.Request) (int, map[string]string) {
		if r.Header.Get("X-Scope-OrgID") == "stuck" {
			return http.StatusTooManyRequests, map[string]string{"Retry-After": "3600"}
		}
		return http.StatusNoContent, nil
	}).Start()
	tc := config.TenantConfig{Label: "cri_namespace"}
	cfg := config.Config{URL: rc.URL(), Name: "ep", Tenant: &tc}
	cfg.QueueConfig.MinBackoff = model.Duration(time.Millisecond)
	cfg.QueueConfig.MaxBackoff = model.Duration(time.Hour) // Retry-After is capped at 10*max_backoff
	f := false
	cfg.MetadataConfig.Send = &f
	walCfg := config.DefaultWALConfig()
	walCfg.Dir = t.TempDir()
	// The least budget: its segments are 256 KiB, so a few rounds of the
	// stuck tenant's fill it.
	walCfg.MaxSize = config.MinWALSize
	reg := prometheus.NewRegistry()
	r, err := New(cfg, walCfg, rwtest.Logger(t), reg, remotewrite.WithFlushDeadline(50*time.Millisecond))
	require.NoError(t, err)
	fx := &routerFixture{r: r, reg: reg, walCfg: walCfg, cfg: cfg}
	fx.run(t)
	const rounds, fastPer, stuckPer = 30, 20, 4000
	for i := range rounds {
		ts := int64(1000 + i)
		ss := nsRound(ts, fastPer, "fast")
		for j := range stuckPer {
			// Unique label values, so snappy cannot shrink them away.
			ss = append(ss, mkSeries("m", []series.Sample{{Timestamp: ts, Value: 1}},
				"cri_namespace", "stuck", "id", fmt.Sprintf("%d-%08x", j, uint32(j)*2654435761^uint32(i)*40503)))
		}
		fx.appendRound(t, ss)
		// The fast tenant keeps up, round by round, as a receiver that
		// answers does.
		require.Eventually(t, func() bool {
			return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "fast"}) == float64((i+1)*fastPer)
		}, 20*time.Second, time.Millisecond, "round %d", i)
		require.LessOrEqual(t, metric(t, fx.reg, "kata_monitor_wal_bytes", map[string]string{"tenant": ""}), float64(config.MinWALSize), "round %d", i)
	}
	stuck := map[string]string{"tenant": "stuck"}
	appended := metric(t, fx.reg, "kata_monitor_wal_samples_appended_total", stuck)
	dropped := metric(t, fx.reg, "kata_monitor_wal_dropped_samples_total", map[string]string{"tenant": "stuck", "reason": "disk_budget"})
	require.Equal(t, float64(rounds*stuckPer), appended)
	require.Positive(t, dropped, "the stuck tenant's oldest blocks went")
	require.Equal(t, appended, dropped+metric(t, fx.reg, "kata_monitor_wal_pending_samples", stuck))
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", stuck))
	require.Zero(t, metric(t, fx.reg, "kata_monitor_wal_dropped_samples_total", map[string]string{"tenant": "fast"}))
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_samples_dropped_total", map[string]string{"tenant": "fast"}))
}
