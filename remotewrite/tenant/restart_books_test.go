package tenant

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// TestRouterBooksAcrossRestart: a tenant its receiver throttles (429)
// for a whole run keeps its backlog over a clean restart, and another
// tenant flows in both runs; summed over the two runs, each tenant's
// samples appended equal those sent plus those dropped (none), and the
// receiver stores each sample once: nothing lost, nothing sent or
// counted twice.
func TestRouterBooksAcrossRestart(t *testing.T) {
	var throttle atomic.Bool
	throttle.Store(true)
	rc := newReceiver(t, func(_ int, r *http.Request) (int, map[string]string) {
		if throttle.Load() && r.Header.Get("X-Scope-OrgID") == "b" {
			return http.StatusTooManyRequests, map[string]string{"Retry-After": "3600"}
		}
		return http.StatusNoContent, nil
	}).Start()
	dir := t.TempDir()
	const perNS = 5
	books := map[string]map[string]float64{"a": {}, "b": {}}
	tally := func(fx *routerFixture) {
		for tn, b := range books {
			for _, name := range []string{"samples_appended_total", "samples_sent_total", "samples_dropped_total"} {
				b[name] += metric(t, fx.reg, "kata_monitor_remote_write_"+name, map[string]string{"tenant": tn})
			}
			b["wal_dropped"] += metric(t, fx.reg, "kata_monitor_wal_dropped_samples_total", map[string]string{"tenant": tn})
		}
	}
	sent := func(fx *routerFixture, tn string) float64 {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": tn})
	}
	ts := int64(0)
	for life, rounds := range []int{8, 4} {
		fx := newRouterFixture(t, rc.URL(), dir, config.TenantConfig{Label: "cri_namespace"})
		fx.r.cfg.QueueConfig.MaxBackoff = model.Duration(time.Hour) // Retry-After is capped at 10*max_backoff
		stop := fx.run(t)
		if life == 1 {
			throttle.Store(false)
		}
		for range rounds {
			ts += 1000
			fx.appendRound(t, nsRound(ts, perNS, "a", "b"))
		}
		require.Eventually(t, func() bool {
			if life == 0 {
				return sent(fx, "a") == float64(rounds*perNS)
			}
			return sent(fx, "a") == float64(rounds*perNS) && sent(fx, "b") == float64(12*perNS)
		}, 20*time.Second, 5*time.Millisecond, "life %d", life)
		tally(fx) // before stop: Run unregisters the metrics
		require.NoError(t, stop())
	}
	for tn, b := range books {
		require.Equal(t, float64(12*perNS), b["samples_appended_total"], "tenant %s", tn)
		require.Equal(t, b["samples_appended_total"], b["samples_sent_total"]+b["samples_dropped_total"]+b["wal_dropped"], "tenant %s: %v", tn, b)
	}
	stored := 0
	for k, ss := range rc.Stored() {
		require.Len(t, ss, 12, "series %s: every round's sample once", k)
		stored++
	}
	require.Equal(t, 2*perNS, stored)
}
