package send

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// memTransport answers every request 204 with the Written headers of a
// 2.0 receiver, in memory (no network: it runs inside a synctest bubble),
// and counts the body bytes it received.
type memTransport struct {
	mu    sync.Mutex
	bytes int
}

func (m *memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	n, _ := io.Copy(io.Discard, r.Body)
	r.Body.Close()
	m.mu.Lock()
	m.bytes += int(n)
	m.mu.Unlock()
	h := http.Header{}
	h.Set("X-Prometheus-Remote-Write-Samples-Written", "0") // accounting is not what this test is about
	return &http.Response{StatusCode: http.StatusNoContent, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func (m *memTransport) sent() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// TestRateCapHoldsDuringCatchUp: a backlog far larger than a minute of the
// cap (an outage's worth of rounds) is sent at queue_config.max_bytes_per_second
// over all shards: over one minute of catch-up the bytes on the wire stay
// within 10% of cap x 60 s (plus the one-second burst the bucket starts
// with). synctest's fake clock makes the minute exact and instant.
func TestRateCapHoldsDuringCatchUp(t *testing.T) {
	const capBps = 20_000
	synctest.Test(t, func(t *testing.T) {
		cfg := config.Config{URL: "http://receiver.invalid/api/v1/write", ProtobufMessage: codec.MessageV2}
		cfg.QueueConfig.MaxBytesPerSecond = capBps
		cfg.QueueConfig.MaxSamplesPerSend = 500
		cfg.MetadataConfig.Send = new(bool)
		cfg.ApplyDefaults()
		require.NoError(t, cfg.Validate())
		tr := &memTransport{}
		mq := newMemQueue()
		q, _ := newTestQueue(t, cfg, mq, tr)
		total := 0
		for r := 1; r <= 100; r++ { // ~100 rounds of an outage
			blocks, _, err := q.enc.Encode(v2Round(r, 2000), q.format)
			require.NoError(t, err)
			for _, b := range blocks {
				total += len(b.Data)
			}
			require.NoError(t, mq.Append(blocks))
		}
		require.Greater(t, total, 2*60*capBps, "the backlog outlasts the minute")

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- q.Run(ctx) }()
		time.Sleep(60 * time.Second)
		got := tr.sent()
		cancel()
		require.NoError(t, <-done)
		want := 60*capBps + capBps // a minute, plus the initial burst
		t.Logf("capped at %d B/s: %d bytes in 60 s (%.1f%% of %d)", capBps, got, 100*float64(got)/float64(want), want)
		require.InDelta(t, want, got, 0.1*float64(want))
		require.Less(t, testutil.ToFloat64(q.metrics.bytesSent), float64(total), "still catching up")
	})
}
