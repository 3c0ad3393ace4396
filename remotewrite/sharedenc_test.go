package remotewrite

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// TestSharedEncoderConcurrentQueues: two endpoints' queues encoding with
// one SharedEncoder, appending concurrently (Append's path) and in parts
// (Stage's path), each deliver exactly their own rounds, in order: one
// queue's encode never overwrites the other's output before it is copied.
func TestSharedEncoderConcurrentQueues(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request) (int, map[string]string) { return http.StatusNoContent, nil }).Start()
	walCfg := tempWAL(t)
	base := fastRetries(config.Config{URL: rc.URL(), Name: "x"})
	base.ApplyDefaults()
	enc, err := NewSharedEncoder(base)
	require.NoError(t, err)
	const rounds, nSeries = 20, 40
	var wg sync.WaitGroup
	regs := map[string]*prometheus.Registry{}
	for _, name := range []string{"a", "b"} {
		cfg := base
		cfg.Name = name
		cfg.Headers = map[string]string{"X-Queue": name}
		reg := prometheus.NewRegistry()
		regs[name] = reg
		q, err := New(cfg, walCfg, testLogger(t), reg, WithSharedEncoder(enc))
		require.NoError(t, err)
		stop := runQueue(t, q)
		t.Cleanup(func() { _ = stop() })
		wg.Go(func() {
			for r := 1; r <= rounds; r++ {
				ss := roundOf(r, nSeries)
				if name == "b" { // distinct series per queue
					for i := range ss {
						ss[i].Labels[len(ss[i].Labels)-1].Value += "b"
					}
				}
				if r%2 == 0 {
					require.NoError(t, q.Append(context.Background(), ss))
					continue
				}
				require.NoError(t, q.Stage(context.Background(), ss[:nSeries/2]))
				require.NoError(t, q.Stage(context.Background(), ss[nSeries/2:]))
				require.NoError(t, q.Commit(context.Background()))
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		return gathered(t, regs["a"], "kata_monitor_remote_write_samples_sent_total") == rounds*nSeries &&
			gathered(t, regs["b"], "kata_monitor_remote_write_samples_sent_total") == rounds*nSeries
	}, 20*time.Second, 5*time.Millisecond)
	got := rc.Stored()
	require.Len(t, got, 2*nSeries)
	requireInOrder(t, got, 2*nSeries, rounds)
	for _, r := range rc.Requests() {
		for _, ts := range r.Req.Timeseries {
			idx := ts.Get("idx")
			require.Equal(t, r.Header.Get("X-Queue") == "b", idx[len(idx)-1] == 'b', "series %s in queue %s's request", idx, r.Header.Get("X-Queue"))
		}
	}
}
