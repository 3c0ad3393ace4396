package tenant

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// endingCtx is a context that ends (Err returns context.Canceled) after
// its first live calls of Err: a shutdown arriving at any point of a call.
type endingCtx struct {
	context.Context
	live atomic.Int32
}

func (c *endingCtx) Err() error {
	if c.live.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// TestRouterHeldSurviveCancelMidStage: a shutdown that ends Append's
// context at any check while a tenant's full bucket is being staged leaves
// every series the router took held or staged, so Close writes them all to
// the WAL (none vanish uncounted).
func TestRouterHeldSurviveCancelMidStage(t *testing.T) {
	rc := newReceiver(t, nil).Start()
	for live := int32(0); live <= 4; live++ {
		fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace"})
		fx.cfg.QueueConfig.MaxSamplesPerSend = 2
		fx.r.Close()
		var err error
		fx.r, err = New(fx.cfg, fx.walCfg, rwtest.Logger(t), fx.reg)
		require.NoError(t, err)
		ss := []series.Series{
			mkSeries("m", []series.Sample{{Timestamp: 1, Value: 1}}, "cri_namespace", "a", "idx", "0"),
			mkSeries("m", []series.Sample{{Timestamp: 1, Value: 1}}, "cri_namespace", "a", "idx", "1"),
			mkSeries("m", []series.Sample{{Timestamp: 1, Value: 1}}, "cri_namespace", "a", "idx", "2"),
		}
		ctx := &endingCtx{Context: context.Background()}
		ctx.live.Store(live)
		appendErr := fx.r.Append(ctx, ss)
		require.NoError(t, fx.r.Close())
		taken := 0.0
		if live > 0 { // Append's own first check passed: it took the series
			taken = 3
		}
		// The next start sends what the WAL holds.
		fx.reg = prometheus.NewRegistry()
		fx.r, err = New(fx.cfg, fx.walCfg, rwtest.Logger(t), fx.reg)
		require.NoError(t, err)
		stop := fx.run(t)
		sent := func() float64 {
			return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "a"})
		}
		for end := time.Now().Add(5 * time.Second); sent() < taken && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond) // polling a counter, not synchronising
		}
		require.Equal(t, taken, sent(), "live checks %d, Append: %v", live, appendErr)
		require.NoError(t, stop())
	}
}

// TestRouterCommitCancelledThenIdle: a shutdown of the forwarder's context
// arriving inside Commit, after a tenant's series were staged, still
// writes them to its WAL: otherwise the tenant's queue, no longer marked
// as holding part of a round and with nothing pending, would be closed
// for idleness with the series never written.
func TestRouterCommitCancelledThenIdle(t *testing.T) {
	rc := newReceiver(t, nil).Start()
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace"})
	fx.run(t)
	require.Eventually(t, func() bool { // Run started: closeIdle may stop queues
		fx.r.mu.Lock()
		defer fx.r.mu.Unlock()
		return fx.r.runCtx != nil
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, fx.r.Append(context.Background(), []series.Series{
		mkSeries("m", []series.Sample{{Timestamp: 1, Value: 1}}, "cri_namespace", "x", "idx", "0")}))
	ctx := &endingCtx{Context: context.Background()}
	ctx.live.Store(2) // Commit's and the stage's checks pass, the queue's Commit's does not
	_ = fx.r.Commit(ctx)
	fx.r.mu.Lock()
	fx.r.now = func() time.Time { return time.Now().Add(24 * time.Hour) }
	fx.r.mu.Unlock()
	for end := time.Now().Add(5 * time.Second); len(rc.Stored()) == 0 && time.Now().Before(end); {
		fx.r.closeIdle()
		time.Sleep(5 * time.Millisecond) // polling the receiver, not synchronising
	}
	require.Len(t, rc.Stored(), 1, "the receiver stored the series")
}

// TestRouterOpenFailureCounted: the series of a tenant whose queue cannot
// be opened (its metrics clash with a collector already registered) are
// dropped, and counted
// under reason tenant_queue_error like those of an invalid tenant, so the
// router's accounting stays exact; the other tenants' series are taken.
func TestRouterOpenFailureCounted(t *testing.T) {
	rc := newReceiver(t, nil).Start()
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace"})
	// A collector in the way of tenant x's WAL stream metrics.
	require.NoError(t, fx.reg.Register(prometheus.NewGauge(prometheus.GaugeOpts{Name: "kata_monitor_wal_pending_samples",
		Help: "Samples appended but not yet acknowledged or dropped.", ConstLabels: prometheus.Labels{"endpoint": fx.cfg.Name, "tenant": "x"}})))
	err := fx.r.Append(context.Background(), []series.Series{
		mkSeries("m", []series.Sample{{Timestamp: 1, Value: 1}, {Timestamp: 2, Value: 2}}, "cri_namespace", "x", "idx", "0"),
		mkSeries("m", []series.Sample{{Timestamp: 1, Value: 1}}, "cri_namespace", "y", "idx", "0"),
	})
	require.ErrorContains(t, err, `tenant "x"`)
	require.NoError(t, fx.r.Commit(context.Background()))
	require.Equal(t, 2.0, metric(t, fx.reg, "kata_monitor_remote_write_tenant_samples_dropped_total", map[string]string{"reason": "tenant_queue_error"}))
	require.Equal(t, 1.0, metric(t, fx.reg, "kata_monitor_remote_write_samples_appended_total", map[string]string{"tenant": "y"}))
}
