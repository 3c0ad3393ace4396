package send

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestSendRetriesThenSucceedsInOrder(t *testing.T) {
	tests := []struct {
		name      string
		failFirst int
		code      int
	}{
		{name: "500 then 200", failFirst: 3, code: http.StatusInternalServerError},
		{name: "503 then 200", failFirst: 1, code: http.StatusServiceUnavailable},
		{name: "429 then 200", failFirst: 2, code: http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rc := newMemReceiver(t, func(n int, _ *http.Request) (int, map[string]string) {
					if n < tt.failFirst {
						return tt.code, nil
					}
					return http.StatusOK, nil
				})
				q, _ := fastQueue(t, rc.Transport(), func(qc *config.QueueConfig) { qc.MaxSamplesPerSend = 1; qc.MaxShards = 1 })
				const rounds, nSeries = 5, 3
				deliverAll(t, q, rounds*nSeries, roundsOf(rounds, nSeries)...)

				requireInOrder(t, rc.Stored(), nSeries, rounds)
				require.Equal(t, float64(tt.failFirst), testutil.ToFloat64(q.metrics.failed))
				require.Equal(t, float64(tt.failFirst), testutil.ToFloat64(q.metrics.retried))
				require.Equal(t, float64(rounds*nSeries), testutil.ToFloat64(q.metrics.sent))
				require.Equal(t, float64(tt.failFirst), testutil.ToFloat64(q.metrics.requests.WithLabelValues(fmt.Sprint(tt.code))))
				// The first block's attempts come first (one shard, one
				// sample per block); the gaps between them are the waits.
				reqs := rc.Requests()
				prev := time.Duration(0)
				for i := range tt.failFirst {
					w := reqs[i+1].At.Sub(reqs[i].At)
					// Backoff doubles from min (±10% jitter), never above max.
					require.GreaterOrEqual(t, w, time.Duration(q.cfg.QueueConfig.MinBackoff)*9/10)
					require.Greater(t, w, prev)
					prev = w
				}
				require.Zero(t, reqs[tt.failFirst+1].At.Sub(reqs[tt.failFirst].At), "no wait after the success")
				require.Positive(t, testutil.ToFloat64(q.metrics.lastSuccess))
				require.Equal(t, float64(rounds), testutil.ToFloat64(q.metrics.highestSent))
				require.Equal(t, float64(rounds), testutil.ToFloat64(q.metrics.highestAppended))
				require.Zero(t, testutil.ToFloat64(q.metrics.lag))
			})
		})
	}
}

func TestOrderUnderRandomFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		codes := []int{500, 502, 503, 429}
		rc := newMemReceiver(t, func(int, *http.Request) (int, map[string]string) {
			// Called under the receiver's lock, so rng is not shared.
			if rng.IntN(100) < 35 {
				return codes[rng.IntN(len(codes))], nil
			}
			return http.StatusNoContent, nil
		})
		q, mq := fastQueue(t, rc.Transport(), func(qc *config.QueueConfig) { qc.MaxSamplesPerSend = 7; qc.MaxShards = 4 })
		stop := runQueue(t, q)

		const rounds, nSeries = 60, 40
		appended := make(chan error, 1)
		go func() { // rounds arrive while the sender runs
			for r := range rounds {
				if err := q.Append(context.Background(), roundOf(r+1, nSeries)); err != nil {
					appended <- err
					return
				}
			}
			appended <- nil
		}()
		require.NoError(t, <-appended)
		blocksPerRound := (nSeries + 6) / 7
		require.Eventually(t, func() bool { return mq.AckedSeq() == uint64(rounds*blocksPerRound) }, 30*time.Second, 10*time.Millisecond)
		require.NoError(t, stop())

		requireInOrder(t, rc.Stored(), nSeries, rounds)
		require.Positive(t, testutil.ToFloat64(q.metrics.failed), "the receiver did fail")
		require.Equal(t, float64(rounds*nSeries), testutil.ToFloat64(q.metrics.sent))
		require.Equal(t, float64(rounds*nSeries), testutil.ToFloat64(q.metrics.appended))
	})
}

func TestShutdownGivesInFlightRequestsAFlushDeadline(t *testing.T) {
	const deadline = 5 * time.Second
	tests := []struct {
		name      string
		answerIn  time.Duration // after the cancel; 0: never
		wantAcked uint64
	}{
		{name: "answer within deadline is acked", answerIn: 3 * time.Second, wantAcked: 1},
		{name: "hung receiver is cut at deadline", wantAcked: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// In a bubble the deadline is measured exactly: Run returns
			// when the answer comes, or at the deadline, not a moment
			// later or sooner.
			synctest.Test(t, func(t *testing.T) {
				arrived := make(chan struct{}, 1)
				rc := rwtest.NewMemReceiver(t, nil)
				hung := rwtest.HandlerTransport(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					arrived <- struct{}{}
					if tt.answerIn == 0 {
						<-r.Context().Done()
						return
					}
					select {
					case <-time.After(tt.answerIn):
						rc.Handle(w, r)
					case <-r.Context().Done():
					}
				}))
				mq := newMemQueue()
				q, _ := newTestQueue(t, config.Config{URL: rc.URL()}, mq, hung)
				q.flushDeadline = deadline
				require.NoError(t, q.Append(context.Background(), roundOf(1, 2)))
				require.NoError(t, q.Append(context.Background(), roundOf(2, 2)))

				ctx, cancel := context.WithCancel(t.Context())
				errc := make(chan error, 1)
				go func() { errc <- q.Run(ctx) }()
				<-arrived
				start := time.Now()
				cancel()
				require.NoError(t, <-errc)
				want := deadline
				if tt.answerIn > 0 {
					want = tt.answerIn
				}
				require.Equal(t, want, time.Since(start), "Run returned when the request ended")
				require.Equal(t, tt.wantAcked, mq.AckedSeq())
				require.Len(t, rc.Stored(), int(tt.wantAcked)*2, "no new group after cancel")
			})
		})
	}
}

func TestLogLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := NewLogLimiter(time.Minute, func() time.Time { return now })
	ok, n := l.Allow()
	require.True(t, ok)
	require.Zero(t, n)
	for range 5 {
		ok, _ = l.Allow()
		require.False(t, ok)
	}
	now = now.Add(time.Minute)
	ok, n = l.Allow()
	require.True(t, ok)
	require.Equal(t, 5, n)
}
