package e2e

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/faultproxy"
	"github.com/kata-containers/kata-monitor/test/receiver"
)

// TestRejectedBatchAndRetryAfter: one batch answered 400 is split and its
// halves delivered (the 400 was not about any one series), so nothing is
// dropped; a 429 with Retry-After is retried after the delay and then
// delivered.
func TestRejectedBatchAndRetryAfter(t *testing.T) {
	t.Parallel()
	node := startNode(t, 2)
	_, p, url := proxied(t, receiver.VictoriaMetrics)
	var rejected, throttledAt, retriedAt atomic.Int64
	p.SetFaults(func(n int64, req *prompb.WriteRequest) faultproxy.Fault {
		switch n {
		case 3:
			var s int64
			for _, ts := range req.Timeseries {
				s += int64(len(ts.Samples))
			}
			rejected.Store(s)
			return faultproxy.Fault{Status: http.StatusBadRequest}
		case 6:
			throttledAt.Store(time.Now().UnixNano())
			return faultproxy.Fault{Status: http.StatusTooManyRequests, RetryAfter: "2"}
		case 7:
			retriedAt.Store(time.Now().UnixNano())
		}
		return faultproxy.Fault{}
	})
	cfg := writeConfig(t, "500ms", t.TempDir(), "64MiB", endpoint{name: "vm", url: url})
	m := startMonitor(t, node, "--config", cfg)
	require.Eventually(t, func() bool { return p.Stats().Requests >= 12 }, 60*time.Second, 100*time.Millisecond)
	require.GreaterOrEqual(t, time.Duration(retriedAt.Load()-throttledAt.Load()), 1900*time.Millisecond, "Retry-After honoured")
	st := p.Stats()
	require.Equal(t, rejected.Load(), st.RejectedSamples)
	self := m.ownMetrics(t)
	require.Zero(t, self[`kata_monitor_remote_write_samples_dropped_total{endpoint="vm",reason="refused"}`], "nothing dropped: the halves went through")
	require.Equal(t, 1.0, self[`kata_monitor_remote_write_request_splits_total{code="400",endpoint="vm"}`], "the refused batch was split once")
	require.Greater(t, st.ForwardedSamples, rejected.Load()*3, "later batches went through")
}
