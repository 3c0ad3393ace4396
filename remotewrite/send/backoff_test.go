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
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// scriptedTransport answers the first requests from answers (a status code
// and an optional Retry-After), then 204, in memory (no network: it runs
// inside a synctest bubble), and records when each request came.
type scriptedTransport struct {
	mu      sync.Mutex
	answers []scripted
	at      []time.Time
}

type scripted struct {
	code       int
	retryAfter string
}

func (s *scriptedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := scripted{code: http.StatusNoContent}
	if n := len(s.at); n < len(s.answers) {
		a = s.answers[n]
	}
	s.at = append(s.at, time.Now())
	h := http.Header{}
	if a.retryAfter != "" {
		h.Set("Retry-After", a.retryAfter)
	}
	return &http.Response{StatusCode: a.code, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

// gaps returns the time between consecutive requests.
func (s *scriptedTransport) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(s.at); i++ {
		out = append(out, s.at[i].Sub(s.at[i-1]))
	}
	return out
}

// TestBackoffTimes runs the retry loop with its real timers in a
// testing/synctest bubble, where the waits between attempts are measured
// exactly: min_backoff doubling up to max_backoff (each within the 10 %
// randomization), a Retry-After hint taken as given, failing_since set for
// the whole streak. The other retry tests run in bubbles too, against
// in-memory receivers (rwtest.NewMemReceiver: a socket is not durably
// blocking, so an httptest server cannot be in a bubble), except the one
// that needs Go's TLS server on a real socket
// (TestReviewHTTPToHTTPSRetried), which waits on attempts, not durations.
// Long for its table of schedules.
func TestBackoffTimes(t *testing.T) {
	const unavailable = http.StatusServiceUnavailable
	tests := []struct {
		name    string
		answers []scripted
		want    []time.Duration // nominal gaps; the randomization is ±10 %
		exact   []bool          // the gap has no randomization
	}{
		{"doubling up to max_backoff",
			[]scripted{{code: unavailable}, {code: unavailable}, {code: unavailable}, {code: unavailable}, {code: unavailable}},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}, nil},
		{"retry-after taken as given, the backoff not advanced",
			[]scripted{{code: unavailable, retryAfter: "7"}, {code: unavailable}},
			[]time.Duration{7 * time.Second, time.Second}, []bool{true, false}},
		{"retry-after as an HTTP date, from 429",
			// The bubble's clock starts at 2000-01-01T00:00:00Z, when the
			// first attempt goes out.
			[]scripted{{code: http.StatusTooManyRequests, retryAfter: "Sat, 01 Jan 2000 00:00:03 GMT"}},
			[]time.Duration{3 * time.Second}, []bool{true}},
		{"retry-after capped at 10 x max_backoff",
			[]scripted{{code: unavailable, retryAfter: "3600"}},
			[]time.Duration{40 * time.Second}, []bool{true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := config.Config{URL: "http://receiver.invalid/api/v1/write"}
				cfg.QueueConfig.MaxShards = 1
				cfg.QueueConfig.MinBackoff = model.Duration(time.Second)
				cfg.QueueConfig.MaxBackoff = model.Duration(4 * time.Second)
				cfg.MetadataConfig.Send = new(bool)
				cfg.ApplyDefaults()
				require.NoError(t, cfg.Validate())
				tr := &scriptedTransport{answers: tt.answers}
				mq := newMemQueue()
				q, _ := newTestQueue(t, cfg, mq, tr)
				require.NoError(t, q.Append(context.Background(), roundOf(1, 10)))
				start := time.Now()

				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- q.Run(ctx) }()
				time.Sleep(time.Nanosecond) // the first attempt, at once
				synctest.Wait()
				require.Equal(t, float64(start.Unix()), testutil.ToFloat64(q.metrics.failingSince), "failing since the first failure")
				time.Sleep(time.Minute) // far past the last retry
				synctest.Wait()
				require.Equal(t, uint64(1), mq.AckedSeq(), "delivered after the retries")
				require.Zero(t, testutil.ToFloat64(q.metrics.failingSince), "healthy again")
				cancel()
				require.NoError(t, <-done)

				gaps := tr.gaps()
				require.Len(t, gaps, len(tt.want))
				for i, w := range tt.want {
					if i < len(tt.exact) && tt.exact[i] {
						require.Equal(t, w, gaps[i], "gap %d", i)
						continue
					}
					require.InDelta(t, float64(w), float64(gaps[i]), 0.1*float64(w)+1, "gap %d: %v", i, gaps)
				}
			})
		})
	}
}
