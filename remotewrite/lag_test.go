package remotewrite

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// TestLagGrowsFromStartAndAcrossRestarts: with a receiver that never
// answered 2xx since start, queue_lag_seconds is the age of the oldest
// unsent sample (it used to read 0 until the first successful send), it
// survives a restart (read from the WAL), and it is 0 once everything is
// sent.
func TestLagGrowsFromStartAndAcrossRestarts(t *testing.T) {
	rc, up := newSwitchReceiver(t)
	cfg := fastRetries(config.Config{URL: rc.URL(), Name: "lag"})
	walCfg := tempWAL(t)
	reg := prometheus.NewRegistry()
	t0 := time.UnixMilli(1_700_000_000_000)
	var now atomic.Int64 // ms
	now.Store(t0.UnixMilli())
	clock := func() time.Time { return time.UnixMilli(now.Load()) }
	lagMetric := func() float64 {
		return gathered(t, reg, "kata_monitor_remote_write_queue_lag_seconds")
	}

	q1, err := New(cfg, walCfg, testLogger(t), reg)
	require.NoError(t, err)
	q1.now = clock
	require.Zero(t, lagMetric(), "nothing pending")
	stop1 := runQueue(t, q1)
	for r := range 5 {
		// Rounds 1 s apart, scraped "now".
		require.NoError(t, q1.Append(context.Background(), roundOf(int(t0.Unix())+r, 3)))
	}
	require.Eventually(t, func() bool { return gathered(t, reg, "kata_monitor_remote_write_samples_failed_total") > 0 }, 10*time.Second, 5*time.Millisecond)
	now.Add(10_000)
	require.Equal(t, 10.0, lagMetric(), "age of the oldest unsent sample")
	now.Add(50_000)
	require.Equal(t, 60.0, lagMetric(), "grows while nothing is sent")
	require.NoError(t, stop1())

	q2, err := New(cfg, walCfg, testLogger(t), reg)
	require.NoError(t, err)
	q2.now = clock
	require.Equal(t, 60.0, lagMetric(), "after a restart, before anything is sent")
	up.Store(true)
	stop2 := runQueue(t, q2)
	require.Eventually(t, func() bool { return gathered(t, reg, "kata_monitor_remote_write_samples_sent_total") == 15 }, 10*time.Second, 5*time.Millisecond)
	require.Zero(t, lagMetric(), "nothing pending")
	require.NoError(t, stop2())
}
