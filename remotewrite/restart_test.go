package remotewrite

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// TestRestartDeliversQueuedRoundsOnce runs the real WAL: rounds appended
// while the receiver is down survive a stop, and a new Queue on the same
// directory delivers each of them exactly once, in order, followed by new
// rounds.
func TestRestartDeliversQueuedRoundsOnce(t *testing.T) {
	rc, up := newSwitchReceiver(t)

	cfg := fastRetries(config.Config{URL: rc.URL(), Name: "primary"})
	cfg.QueueConfig.MaxSamplesPerSend = 5
	walCfg := tempWAL(t)
	reg := prometheus.NewRegistry()
	const nSeries, before, after = 12, 20, 5

	// Phase 1: receiver down.
	q1, err := New(cfg, walCfg, testLogger(t), reg, WithUserAgent("kata-monitor/restart"))
	require.NoError(t, err)
	stop1 := runQueue(t, q1)
	for r := range before {
		require.NoError(t, q1.Append(context.Background(), roundOf(r+1, nSeries)))
	}
	require.Eventually(t, func() bool { return gathered(t, reg, "kata_monitor_remote_write_samples_failed_total") > 0 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, float64(before*nSeries), gathered(t, reg, "kata_monitor_remote_write_samples_appended_total"))
	require.NoError(t, stop1())
	require.Empty(t, rc.Stored())

	// Phase 2: same directory and registry (Close unregistered the
	// metrics), receiver up.
	up.Store(true)
	q2, err := New(cfg, walCfg, testLogger(t), reg, WithUserAgent("kata-monitor/restart"))
	require.NoError(t, err)
	stop2 := runQueue(t, q2)
	for r := before; r < before+after; r++ {
		require.NoError(t, q2.Append(context.Background(), roundOf(r+1, nSeries)))
	}
	require.Eventually(t, func() bool {
		return gathered(t, reg, "kata_monitor_remote_write_samples_sent_total") == float64((before+after)*nSeries)
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop2())

	requireInOrder(t, rc.Stored(), nSeries, before+after)
	for _, r := range rc.Requests() {
		require.Equal(t, "kata-monitor/restart", r.Header.Get("User-Agent"))
	}
	// Both queues' and the WAL's metrics are labelled with the endpoint.
	n, err := testutil.GatherAndCount(reg, "kata_monitor_remote_write_samples_sent_total")
	require.NoError(t, err)
	require.Zero(t, n, "unregistered after Run returned")
}

func TestNewErrors(t *testing.T) {
	walCfg := tempWAL(t)
	tests := []struct {
		name    string
		cfg     config.Config
		wal     func(config.WALConfig) config.WALConfig
		wantErr string
	}{
		{name: "invalid endpoint", cfg: config.Config{URL: "nope://x"}, wantErr: "url: scheme"},
		{name: "invalid wal", cfg: config.Config{URL: "http://x/w"}, wal: func(w config.WALConfig) config.WALConfig { w.Fsync = "never"; return w }, wantErr: "wal.fsync:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := walCfg
			if tt.wal != nil {
				w = tt.wal(w)
			}
			_, err := New(tt.cfg, w, nil, nil)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}

	t.Run("same name twice is an error, not a panic", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		cfg := config.Config{URL: "http://127.0.0.1:1/w", Name: "dup"}
		q, err := New(cfg, walCfg, nil, reg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = q.Close() })
		other := walCfg
		other.Dir = t.TempDir()
		_, err = New(cfg, other, nil, reg)
		require.Error(t, err)
		require.True(t, strings.Contains(err.Error(), "dup"), err.Error())
		require.NoError(t, q.Close())
		require.NoError(t, q.Close(), "idempotent")
	})
}
