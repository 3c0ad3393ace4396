package send

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/send/client"
	"github.com/kata-containers/kata-monitor/remotewrite/series"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// hasIdx reports whether wr holds the series idx=<idx>.
func hasIdx(wr *wreq, idx string) bool {
	for _, ts := range wr.Timeseries {
		for _, l := range ts.Labels {
			if l.Name == "idx" && l.Value == idx {
				return true
			}
		}
	}
	return false
}

func samplesOf(wr *wreq) int { return series.Count(wr.Timeseries) }

// TestRetriedStatusesLoseNothing: every status that says nothing about the
// data (and a connection closed without an answer) is retried with backoff
// until the receiver takes the data: nothing is dropped, the failures are
// counted by code, and failing_since is set during the streak (to the
// first failure) and 0 after. The receiver is in memory and the backoff's
// timers run in a testing/synctest bubble, whose clock starts at
// 2000-01-01T00:00:00Z: the first failure's time is known exactly.
func TestRetriedStatusesLoseNothing(t *testing.T) {
	for _, code := range []int{401, 403, 404, 407, 408, 418, 425, 429, 431, 500, 502, 503, 504, 302, 0} {
		name := strconv.Itoa(code)
		if code == 0 {
			name = "connection closed"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const failFirst = 3
				start := float64(time.Now().Unix())
				var q *testQueue
				var sinceAtRetries []float64 // failing_since when each retry arrives
				rc := rwtest.NewMemReceiver(t, nil)
				rc.Decide = func(n int, _ *http.Request, _ *wreq) (int, map[string]string) {
					if n > 0 {
						sinceAtRetries = append(sinceAtRetries, testutil.ToFloat64(q.metrics.failingSince))
					}
					if n < failFirst {
						return code, nil
					}
					return http.StatusNoContent, nil
				}
				cfg := config.Config{URL: rc.URL()}
				cfg.QueueConfig.MaxShards = 1
				q, _ = newTestQueue(t, cfg, newMemQueue(), rc.Transport())
				const nSeries = 10
				deliverAll(t, q, 1, roundOf(1, nSeries))

				requireInOrder(t, rc.Stored(), nSeries, 1)
				require.Equal(t, float64(nSeries), testutil.ToFloat64(q.metrics.sent))
				require.Zero(t, droppedTotal(q))
				require.Equal(t, float64(failFirst*nSeries), testutil.ToFloat64(q.metrics.failed))
				label := strconv.Itoa(code)
				if code == 0 {
					label = "error"
				}
				require.Equal(t, float64(failFirst), testutil.ToFloat64(q.metrics.requests.WithLabelValues(label)), "failed requests counted by code")
				require.Equal(t, []float64{start, start, start}, sinceAtRetries, "failing_since: the first failure of the streak")
				require.Zero(t, testutil.ToFloat64(q.metrics.failingSince), "healthy again")
			})
		})
	}
}

func droppedTotal(q *testQueue) float64 {
	n := testutil.ToFloat64(q.metrics.droppedTooLarge) + testutil.ToFloat64(q.metrics.dropped429) +
		testutil.ToFloat64(q.metrics.droppedRelabel) + testutil.ToFloat64(q.metrics.droppedPartial)
	for _, r := range client.RefusalReasons { // "refused" and every cause a receiver names
		n += testutil.ToFloat64(q.metrics.dropped.WithLabelValues(r))
	}
	return n
}

// TestRefusedSeriesIsolated: a receiver that refuses a whole request
// whenever it holds one bad series (as Prometheus does with 400 for an
// out-of-order or duplicate sample) costs only that series: the request is
// split down to it, it alone is dropped and counted, every other series
// arrives, within about 2*log2(n) extra requests per refused series.
// Long for its table and the accounting checked after each case.
func TestRefusedSeriesIsolated(t *testing.T) {
	tests := []struct {
		name    string
		code    int
		bad     []string // idx values refused
		nSeries int
		// answer names the cause; without one, a request refused whole
		// is kept and retried (TestRefusedEverything), so a block of a
		// single series needs one to be dropped.
		answer, reason string
	}{
		{name: "400 one of 2000", code: 400, bad: []string{"1234"}, nSeries: 2000},
		{name: "409 first of 100", code: 409, bad: []string{"0000"}, nSeries: 100},
		{name: "422 last of 100", code: 422, bad: []string{"0099"}, nSeries: 100},
		{name: "400 three of 500", code: 400, bad: []string{"0003", "0250", "0499"}, nSeries: 500},
		{name: "400 the only series, cause named", code: 400, bad: []string{"0000"}, nSeries: 1, answer: "out of order sample", reason: client.ReasonOutOfOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rc := newMemReceiver(t, nil)
				rc.Answer = tt.answer
				rc.Decide = func(_ int, _ *http.Request, wr *wreq) (int, map[string]string) {
					for _, b := range tt.bad {
						if hasIdx(wr, b) {
							return tt.code, nil
						}
					}
					return http.StatusNoContent, nil
				}
				q, mq := fastQueue(t, rc.Transport(), func(qc *config.QueueConfig) { qc.MaxSamplesPerSend = 2000 })
				const rounds = 3
				for r := range rounds {
					round := make([]series.Series, tt.nSeries)
					for i := range round {
						round[i] = mkSeries("kata_metric", []series.Sample{sample(int64(r+1)*1000, float64(r))}, "idx", fmt.Sprintf("%04d", i))
					}
					require.NoError(t, q.Append(context.Background(), round))
				}
				stop := runQueue(t, q)
				require.Eventually(t, func() bool { return mq.AckedSeq() == rounds }, 10*time.Second, 5*time.Millisecond)
				require.NoError(t, stop())

				got := rc.Stored()
				require.Len(t, got, tt.nSeries-len(tt.bad), "every good series arrived")
				for _, b := range tt.bad {
					require.NotContains(t, got, "__name__=kata_metric,idx="+b)
				}
				for k, ss := range got {
					require.Len(t, ss, rounds, "series %s: every round", k)
				}
				reason := tt.reason
				if reason == "" {
					reason = client.ReasonRefused
				}
				require.Equal(t, float64(rounds*len(tt.bad)), testutil.ToFloat64(q.metrics.dropped.WithLabelValues(reason)), "only the refused series dropped")
				require.Equal(t, float64(rounds*len(tt.bad)), droppedTotal(q), "nothing else dropped")
				require.Equal(t, float64(rounds*(tt.nSeries-len(tt.bad))), testutil.ToFloat64(q.metrics.sent))
				require.Equal(t, testutil.ToFloat64(q.metrics.appended), testutil.ToFloat64(q.metrics.sent)+droppedTotal(q), "appended = sent + dropped")
				require.Zero(t, testutil.ToFloat64(q.metrics.failed), "a refusal is not retried")
				// Bound: each refused series costs at most 2 requests per level
				// of the split tree.
				levels := int(math.Ceil(math.Log2(float64(tt.nSeries)))) + 1
				perRound := 1 + 2*levels*len(tt.bad)
				require.LessOrEqual(t, len(rc.Requests()), rounds*perRound, "requests bounded by ~2*log2(n) per refused series")
				require.Equal(t, float64(rounds*len(tt.bad)), testutil.ToFloat64(q.metrics.requests.WithLabelValues(strconv.Itoa(tt.code)))-
					testutil.ToFloat64(q.metrics.splits.WithLabelValues(strconv.Itoa(tt.code))), "refusals = splits + isolated series")
				t.Logf("%d series, %d refused: %d requests for %d rounds", tt.nSeries, len(tt.bad), len(rc.Requests()), rounds)
			})
		})
	}
}

// TestSplitKeepsSeriesOrder: a refusal in round r is resolved (split and
// sent) before round r+1 goes out, so no series is reordered.
func TestSplitKeepsSeriesOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := newMemReceiver(t, nil)
		rc.Decide = func(_ int, _ *http.Request, wr *wreq) (int, map[string]string) {
			if hasIdx(wr, "005") && len(wr.Timeseries) > 1 {
				return http.StatusBadRequest, nil // refuse until isolated, then take it
			}
			return http.StatusNoContent, nil
		}
		q, _ := fastQueue(t, rc.Transport(), func(qc *config.QueueConfig) { qc.MaxSamplesPerSend = 8; qc.MaxShards = 4 })
		const rounds, nSeries = 30, 32
		deliverAll(t, q, rounds*4, roundsOf(rounds, nSeries)...)
		requireInOrder(t, rc.Stored(), nSeries, rounds)
		require.Zero(t, droppedTotal(q))
	})
}

// TestTooLargeSplitsAndRemembers: a receiver that answers 413 above 1,000
// samples per request (the default sends 2,000) loses nothing: the
// request is split, the endpoint remembers the smaller size (gauge), and
// later requests are cut to it before sending. Only a single series that
// alone is too large is dropped, under its own reason.
func TestTooLargeSplitsAndRemembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 1000
		rc := newMemReceiver(t, nil)
		rc.Decide = func(_ int, _ *http.Request, wr *wreq) (int, map[string]string) {
			if samplesOf(wr) > limit {
				return http.StatusRequestEntityTooLarge, nil
			}
			return http.StatusNoContent, nil
		}
		q, mq := fastQueue(t, rc.Transport(), nil)
		const rounds, nSeries = 10, 5000
		for r := range rounds {
			require.NoError(t, q.Append(context.Background(), roundOf(r+1, nSeries)))
		}
		// One series with 1,500 samples: too large on its own.
		big := make([]series.Sample, 1500)
		for i := range big {
			big[i] = sample(int64(20000+i), 1)
		}
		require.NoError(t, q.Append(context.Background(), []series.Series{mkSeries("kata_big", big)}))
		stop := runQueue(t, q)
		blocks := uint64(rounds*(nSeries/2000+1) + 1)
		require.Eventually(t, func() bool { return mq.AckedSeq() == blocks }, 20*time.Second, 5*time.Millisecond)
		require.NoError(t, stop())

		requireInOrder(t, withoutName(rc.Stored(), "__name__=kata_big"), nSeries, rounds)
		require.Equal(t, float64(rounds*nSeries), testutil.ToFloat64(q.metrics.sent))
		require.Equal(t, 1500.0, testutil.ToFloat64(q.metrics.droppedTooLarge))
		require.Zero(t, testutil.ToFloat64(q.metrics.droppedRefused))
		require.Equal(t, testutil.ToFloat64(q.metrics.appended), testutil.ToFloat64(q.metrics.sent)+droppedTotal(q))
		require.LessOrEqual(t, testutil.ToFloat64(q.metrics.sendLimit), float64(limit), "smaller size remembered")
		// Only the oversized requests of the first group, sent concurrently
		// before the limit was learnt (2 of 2,000), and the big series met a 413.
		require.LessOrEqual(t, testutil.ToFloat64(q.metrics.requests.WithLabelValues("413")), 3.0)
	})
}

func withoutName(m map[string][]series.Sample, prefix string) map[string][]series.Sample {
	out := map[string][]series.Sample{}
	for k, v := range m {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			continue
		}
		out[k] = v
	}
	return out
}

// TestNotRetried429Dropped: with retry_on_http_429 false the user chose
// Prometheus's behaviour: a 429 drops the request, under its own reason.
func TestNotRetried429Dropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := newMemReceiver(t, nil)
		rc.Decide = func(n int, _ *http.Request, _ *wreq) (int, map[string]string) {
			if n == 0 {
				return http.StatusTooManyRequests, nil
			}
			return http.StatusNoContent, nil
		}
		no := false
		q, _ := fastQueue(t, rc.Transport(), func(qc *config.QueueConfig) { qc.RetryOnHTTP429 = &no })
		deliverAll(t, q, 2, roundOf(1, 4), roundOf(2, 4))
		for _, ss := range rc.Stored() {
			require.Equal(t, []series.Sample{sample(2000, 2)}, ss, "round 1 dropped, round 2 delivered")
		}
		require.Equal(t, 4.0, testutil.ToFloat64(q.metrics.dropped429))
		require.Equal(t, 4.0, testutil.ToFloat64(q.metrics.sent))
		require.Zero(t, testutil.ToFloat64(q.metrics.splits.WithLabelValues("429")))
	})
}

// TestRefusedEverything: a receiver that refuses every series of a block.
// When its answer names a cause (Prometheus's "out of bounds" for a backlog
// older than its head block), the data itself is refused: dropped under
// that reason, at a bounded cost. When it names none (a wrong url, a
// gateway), nothing shows the data is at fault: the block is kept and
// retried, one request per retry but for a split probe every
// splitProbeEvery retries, until the endpoint takes it; nothing dropped.
// Long for its two cases, each checked in full.
func TestRefusedEverything(t *testing.T) {
	const nSeries = 2000
	budget := refusalSplitBudget(nSeries)
	t.Run("cause named: dropped, bounded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rc := newMemReceiver(t, nil)
			rc.Answer = "out of bounds"
			rc.Decide = func(int, *http.Request, *wreq) (int, map[string]string) {
				return http.StatusBadRequest, nil
			}
			q, _ := fastQueue(t, rc.Transport(), nil)
			deliverAll(t, q, 1, roundOf(1, nSeries))
			require.Equal(t, float64(nSeries), testutil.ToFloat64(q.metrics.dropped.WithLabelValues(client.ReasonTooOld)))
			require.Zero(t, testutil.ToFloat64(q.metrics.droppedRefused))
			require.Zero(t, testutil.ToFloat64(q.metrics.sent))
			require.Equal(t, float64(budget), testutil.ToFloat64(q.metrics.splits.WithLabelValues("400")), "the budget is spent, no more")
			require.LessOrEqual(t, len(rc.Requests()), 1+2*budget, "bounded, not ~2 per series (%d)", 2*nSeries)
		})
	})
	t.Run("no cause: kept and retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rc := newMemReceiver(t, nil)
			const acceptAfter = 10 // the endpoint is fixed after this many retries
			// A try's requests all go out at one instant of the bubble's
			// clock; each retry comes after a wait.
			try, last := -1, time.Time{}
			rc.Decide = func(int, *http.Request, *wreq) (int, map[string]string) {
				if now := time.Now(); try < 0 || now.After(last) {
					try, last = try+1, now
				}
				if try >= acceptAfter {
					return http.StatusNoContent, nil
				}
				return http.StatusBadRequest, nil
			}
			q, _ := fastQueue(t, rc.Transport(), nil)
			deliverAll(t, q, 1, roundOf(1, nSeries))
			require.Equal(t, float64(nSeries), testutil.ToFloat64(q.metrics.sent), "everything delivered once the endpoint took it")
			require.Zero(t, droppedTotal(q), "nothing dropped")
			require.Equal(t, float64(acceptAfter*nSeries), testutil.ToFloat64(q.metrics.failed), "each refused round is visible")
			var perTry []int // requests of each try, by arrival time
			for i, r := range rc.Requests() {
				if i == 0 || r.At.After(last) {
					perTry = append(perTry, 0)
				}
				perTry[len(perTry)-1]++
				last = r.At
			}
			require.Len(t, perTry, acceptAfter+1, "refused tries, then the accepted one")
			// The first try and every splitProbeEvery-th retry split (bounded);
			// the retries between cost one request each.
			require.LessOrEqual(t, perTry[0], 1+2*budget, "the first try is a bounded split")
			for i := 1; i < acceptAfter; i++ {
				if i%splitProbeEvery == 0 {
					require.LessOrEqual(t, perTry[i], 1+2*budget, "retry %d: a bounded split probe", i)
					require.Greater(t, perTry[i], 1, "retry %d: a split probe", i)
				} else {
					require.Equal(t, 1, perTry[i], "retry %d: one request", i)
				}
			}
		})
	})
}

// TestShutdownMidSplitCountsNothing: a block whose split is cut short by
// shutdown stays in the WAL (sent whole after the next start), so none of
// its samples may be counted as sent or dropped now, even those of halves
// already delivered: appended = sent + dropped + pending stays exact.
func TestShutdownMidSplitCountsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := newMemReceiver(t, nil)
		rc.Decide = func(n int, _ *http.Request, wr *wreq) (int, map[string]string) {
			switch {
			case n == 0:
				return http.StatusBadRequest, nil // split it
			case hasIdx(wr, "000"):
				return http.StatusBadRequest, nil // the first half splits further, down to 000
			case hasIdx(wr, "007"):
				return http.StatusServiceUnavailable, nil // this part never gets through
			}
			return http.StatusNoContent, nil
		}
		q, mq := fastQueue(t, rc.Transport(), nil)
		require.NoError(t, q.Append(context.Background(), roundOf(1, 8)))
		stop := runQueue(t, q)
		// Everything blocks once the 503 part waits for its retry: stop
		// in the middle of that wait.
		synctest.Wait()
		require.Positive(t, testutil.ToFloat64(q.metrics.failed), "the 503 part is waiting for its retry")
		require.NoError(t, stop())
		require.Zero(t, mq.AckedSeq(), "the block stays for the next start")
		require.Zero(t, testutil.ToFloat64(q.metrics.sent), "nothing counted as sent")
		require.Zero(t, droppedTotal(q), "nothing counted as dropped")
		require.NotEmpty(t, rc.Stored(), "although some halves were delivered")
	})
}
