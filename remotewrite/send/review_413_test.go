package send

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
)

// TestReview413ForEverything: a proxy in front of the receiver answers 413
// to every request for a while (an ingress body limit set far too low,
// fixed later), then the receiver takes everything. Nothing queued
// meanwhile may be dropped as too_large, and the endpoint's request size
// must not collapse to one sample per request: requests of at most
// minTooLargeSamples samples are retried, larger ones split down to that.
// Without the floor, every series was dropped and max_samples_per_send
// stayed at 1 until restart.
func TestReview413ForEverything(t *testing.T) {
	for _, nSeries := range []int{50, 1000} {
		t.Run(strconv.Itoa(nSeries), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var refused atomic.Int64
				rc := newMemReceiver(t, nil)
				rc.Decide = func(int, *http.Request, *wreq) (int, map[string]string) {
					if refused.Load() < 20 {
						refused.Add(1)
						return http.StatusRequestEntityTooLarge, nil
					}
					return http.StatusNoContent, nil
				}
				q, _ := fastQueue(t, rc.Transport(), func(qc *config.QueueConfig) { qc.MaxShards = 1 })
				deliverAll(t, q, 2, roundOf(1, nSeries), roundOf(2, nSeries))

				require.Zero(t, droppedTotal(q), "nothing dropped")
				requireInOrder(t, rc.Stored(), nSeries, 2)
				require.Equal(t, float64(2*nSeries), testutil.ToFloat64(q.metrics.sent))
				require.GreaterOrEqual(t, testutil.ToFloat64(q.metrics.sendLimit), float64(min(nSeries, minTooLargeSamples)), "request size floor")
				require.Equal(t, 20.0, testutil.ToFloat64(q.metrics.requests.WithLabelValues("413")))
				t.Logf("%d series x 2 rounds: %d requests, max_samples_per_send now %v",
					nSeries, len(rc.Requests()), testutil.ToFloat64(q.metrics.sendLimit))
			})
		})
	}
}

// TestReviewWrongPathRetried: a 400 whose answer says the path is wrong
// (VictoriaMetrics 1.79's answer to any path it does not serve) is retried
// like a 404, never split and dropped as refused. The e2e
// TestReviewWrongPathVictoriaMetrics plays it against the real receiver.
func TestReviewWrongPathRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := newMemReceiver(t, func(n int, _ *http.Request) (int, map[string]string) {
			if n < 3 {
				return http.StatusBadRequest, nil
			}
			return http.StatusNoContent, nil
		})
		rc.Answer = `remoteAddr: "127.0.0.1:1"; requestURI: /api/v1/writ; unsupported path requested: "/api/v1/writ"`
		q, _ := fastQueue(t, rc.Transport(), nil)
		deliverAll(t, q, 1, roundOf(1, 10))
		require.Zero(t, droppedTotal(q))
		require.Equal(t, 10.0, testutil.ToFloat64(q.metrics.sent))
		require.Equal(t, 30.0, testutil.ToFloat64(q.metrics.failed), "3 failed attempts of 10 samples")
		require.Zero(t, testutil.ToFloat64(q.metrics.splits.WithLabelValues("400")))
	})
}

// TestReviewHTTPToHTTPSRetried: an http:// url pointing at a TLS port gets
// Go's net/http answer (400 "Client sent an HTTP request to an HTTPS
// server", as from Prometheus, Thanos or Mimir with TLS on) to every
// request. That is about the URL, not the data: nothing may be split and
// dropped as refused; the data waits, failing_since shows it.
func TestReviewHTTPToHTTPSRetried(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	// The answer comes from Go's TLS server on a real socket, so this test
	// runs outside a synctest bubble, with millisecond backoffs; it waits
	// for three failed attempts, not for a duration.
	cfg := config.Config{URL: strings.Replace(srv.URL, "https://", "http://", 1) + "/api/v1/write"}
	cfg.QueueConfig.MinBackoff = model.Duration(time.Millisecond)
	cfg.QueueConfig.MaxBackoff = model.Duration(5 * time.Millisecond)
	mq := newMemQueue()
	q, _ := newTestQueue(t, cfg, mq)
	require.NoError(t, q.Append(context.Background(), roundOf(1, 10)))
	stop := runQueue(t, q)
	require.Eventually(t, func() bool { return testutil.ToFloat64(q.metrics.failed) >= 30 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop())
	require.Zero(t, droppedTotal(q), "nothing dropped")
	require.Zero(t, testutil.ToFloat64(q.metrics.splits.WithLabelValues("400")))
	require.Positive(t, testutil.ToFloat64(q.metrics.failingSince))
	require.Zero(t, mq.AckedSeq(), "the round stays queued")
}

// TestReviewHTMLAnswerRetried: a 200 with a web page (a proxy's login
// page, a url that is a UI) is not a receiver's answer: counting it as
// sent would lose the data silently. It is retried, visibly, until a
// receiver answers.
func TestReviewHTMLAnswerRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if n.Add(1) <= 3 {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = io.WriteString(w, "<html><body>Please log in</body></html>")
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		q, _ := fastQueue(t, rwtest.HandlerTransport(h), nil)
		deliverAll(t, q, 1, roundOf(1, 10))
		require.Equal(t, int64(4), n.Load(), "3 HTML answers retried, then stored")
		require.Equal(t, 30.0, testutil.ToFloat64(q.metrics.failed))
		require.Equal(t, 10.0, testutil.ToFloat64(q.metrics.sent))
		require.Zero(t, droppedTotal(q))
	})
}
