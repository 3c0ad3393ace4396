package e2e

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/faultproxy"
	"github.com/kata-containers/kata-monitor/test/receiver"
)

// noMetadata keeps metadata requests (best effort, zero samples, never
// retried) away from the fault proxy's request numbering.
const noMetadata = "    metadata_config: {send: false}\n"

// proxied starts a receiver of kind behind a fault proxy and returns the
// URL kata-monitor must push to.
func proxied(t *testing.T, kind receiver.Kind) (*receiver.Receiver, *faultproxy.Proxy, string) {
	t.Helper()
	r := startReceiver(t, kind)
	p, err := faultproxy.New(r.WriteURL())
	require.NoError(t, err)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return r, p, srv.URL + "/api/v1/write"
}

// down makes the proxy answer every request with 503: an outage that the
// proxy still counts.
func down(p *faultproxy.Proxy) {
	p.SetFaults(func(int64, *prompb.WriteRequest) faultproxy.Fault {
		return faultproxy.Fault{Status: http.StatusServiceUnavailable}
	})
}

// samplesIn counts the samples of one decoded request.
func samplesIn(req *prompb.WriteRequest) int64 {
	var n int64
	for _, ts := range req.Timeseries {
		n += int64(len(ts.Samples))
	}
	return n
}

// account is one endpoint's sample accounting read from kata-monitor's
// self-metrics (one process: the counters start at 0 with it).
type account struct {
	appended    float64 // kata_monitor_wal_samples_appended_total
	sent        float64 // kata_monitor_remote_write_samples_sent_total
	refused     float64 // kata_monitor_remote_write_samples_dropped_total{reason="refused"}
	tooLarge    float64 // ...{reason="too_large"}
	budget      float64 // kata_monitor_wal_dropped_samples_total{reason="disk_budget"}
	writeError  float64 // ...{reason="write_error"}
	corrupt     float64 // ...{reason="corrupt"}
	pending     float64 // kata_monitor_wal_pending_samples
	corruptions float64 // kata_monitor_wal_corruptions_total
	rounds      float64 // kata_monitor_rounds_total (all triggers)
	// Scrapes that reach a shim but push nothing: failed scrapes and pull
	// rounds (no snapshot yet). Each leaves a hole in a shim counter.
	unpushed float64 // kata_monitor_scrape_failed_count + kata_monitor_rounds_total{trigger="pull"}
}

// dropped is every sample the process gave up on, for any reason.
func (a account) dropped() float64 {
	return a.refused + a.tooLarge + a.budget + a.writeError + a.corrupt
}

func (a account) String() string {
	return fmt.Sprintf("appended=%.0f sent=%.0f dropped(refused=%.0f too_large=%.0f disk_budget=%.0f write_error=%.0f corrupt=%.0f) pending=%.0f corruptions=%.0f rounds=%.0f unpushed-scrapes=%.0f",
		a.appended, a.sent, a.refused, a.tooLarge, a.budget, a.writeError, a.corrupt, a.pending, a.corruptions, a.rounds, a.unpushed)
}

func (m *monitor) account(t *testing.T, ep string) account {
	t.Helper()
	v := m.ownMetrics(t)
	e := fmt.Sprintf("endpoint=%q", ep)
	wal := func(reason string) float64 {
		return v[fmt.Sprintf("kata_monitor_wal_dropped_samples_total{%s,reason=%q}", e, reason)]
	}
	return account{
		appended:    v["kata_monitor_wal_samples_appended_total{"+e+"}"],
		sent:        v["kata_monitor_remote_write_samples_sent_total{"+e+"}"],
		refused:     v["kata_monitor_remote_write_samples_dropped_total{"+e+`,reason="refused"}`],
		tooLarge:    v["kata_monitor_remote_write_samples_dropped_total{"+e+`,reason="too_large"}`],
		budget:      wal("disk_budget"),
		writeError:  wal("write_error"),
		corrupt:     wal("corrupt"),
		pending:     v["kata_monitor_wal_pending_samples{"+e+"}"],
		corruptions: v["kata_monitor_wal_corruptions_total{"+e+"}"],
		rounds:      v["kata_monitor_rounds_total"],
		unpushed:    v["kata_monitor_scrape_failed_count"] + v[`kata_monitor_rounds_total{trigger="pull"}`],
	}
}

// quiesce removes every sandbox so that rounds stop producing samples (the
// staleness markers of the removed series are the last ones), then waits
// until the queue has nothing pending and the counters no longer move. It
// returns the final accounting.
func quiesce(t *testing.T, m *monitor, node *fakenode.Node, ep string, timeout time.Duration) account {
	t.Helper()
	for _, id := range node.IDs() {
		require.NoError(t, node.Remove(id))
	}
	var last account
	stable := 0
	waitFor(t, timeout, 500*time.Millisecond, func() (bool, string) {
		a := m.account(t, ep)
		shims := m.ownMetrics(t)["kata_monitor_running_shim_count"]
		if shims == 0 && a.pending == 0 && a.appended == last.appended && a.sent == last.sent {
			stable++
		} else {
			stable = 0
		}
		last = a
		return stable >= 3, fmt.Sprintf("running shims %.0f, %s", shims, a)
	})
	return last
}

// pause makes every shim answer 503 so rounds stop producing samples while
// the sandboxes stay, waits until the WAL counters no longer move, and
// returns the accounting at that point. resume undoes it.
func pause(t *testing.T, m *monitor, node *fakenode.Node, ep string) account {
	t.Helper()
	for _, id := range node.IDs() {
		node.Shim(id).SetStatus(http.StatusServiceUnavailable)
	}
	var last account
	stable := 0
	waitFor(t, 30*time.Second, 500*time.Millisecond, func() (bool, string) {
		a := m.account(t, ep)
		if a.appended == last.appended && a.sent == last.sent && a.dropped() == last.dropped() {
			stable++
		} else {
			stable = 0
		}
		last = a
		return stable >= 3, a.String()
	})
	return last
}

func resume(node *fakenode.Node) {
	for _, id := range node.IDs() {
		node.Shim(id).SetStatus(0)
	}
}

// counterSeries reads back the per-sandbox counter kata_agent_scrape_count
// of sandbox id (the fake shim serves base+n on its n-th scrape). Staleness
// markers are not scraped values and Export leaves them out; exact duplicates (same timestamp and
// value, from an at-least-once resend into a receiver that keeps them) are
// collapsed and counted.
func counterSeries(t *testing.T, r *receiver.Receiver, id string, start time.Time) (receiver.Series, int) {
	t.Helper()
	got, err := r.Export(ctxT(t), fmt.Sprintf(`kata_agent_scrape_count{sandbox_id=%q}`, id), start, time.Now())
	require.NoError(t, err)
	require.Len(t, got, 1, "one series for sandbox %s", id)
	in := got[0]
	out := receiver.Series{Labels: in.Labels}
	dups := 0
	for i, v := range in.Values {
		if v == 0 || math.IsNaN(v) {
			continue
		}
		if n := len(out.Values); n > 0 && out.Timestamps[n-1] == in.Timestamps[i] && out.Values[n-1] == v {
			dups++
			continue
		}
		out.Values = append(out.Values, v)
		out.Timestamps = append(out.Timestamps, in.Timestamps[i])
	}
	return out, dups
}

// gaps checks that s is in order (timestamps and values strictly
// increasing: no repeat, nothing out of order) and returns the runs of
// missing values as [first missing, last missing] pairs.
func gaps(t *testing.T, s receiver.Series) [][2]float64 {
	t.Helper()
	var out [][2]float64
	for i := 1; i < len(s.Values); i++ {
		require.Greater(t, s.Timestamps[i], s.Timestamps[i-1], "timestamps strictly increasing at %d", i)
		require.Greater(t, s.Values[i], s.Values[i-1], "values strictly increasing at %d (repeat or reorder)", i)
		if s.Values[i] > s.Values[i-1]+1 {
			out = append(out, [2]float64{s.Values[i-1] + 1, s.Values[i] - 1})
		}
	}
	return out
}

func missing(g [][2]float64) float64 {
	var n float64
	for _, r := range g {
		n += r[1] - r[0] + 1
	}
	return n
}

// result logs the one-line summary docs/faults.md quotes.
func result(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("FAULT-RESULT: %s: %s", t.Name(), strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// killLoop starts kata-monitor on node with cfg iterations times and
// SIGKILLs it 50-700 ms into each run (the random kill point is the fault
// being injected, not a wait for a condition), with the receiver behind p
// down (every request refused) in about a third of the runs. It returns
// the stopped monitor, ready for a final run, how many runs had the
// receiver down, and how many scrapes of the killed runs pushed nothing
// (account.unpushed, read just before each kill: a scrape failing after
// the read is in the round the kill interrupts).
func killLoop(t *testing.T, node *fakenode.Node, p *faultproxy.Proxy, cfg string, iterations int, rng *rand.Rand) (*monitor, int, float64) {
	t.Helper()
	var m *monitor
	downRuns := 0
	unpushed := 0.0
	for i := range iterations {
		if rng.IntN(3) == 0 {
			down(p)
			downRuns++
		} else {
			p.SetFaults(nil)
		}
		if m == nil {
			m = startMonitor(t, node, "--config", cfg)
		} else {
			m.start()
		}
		time.Sleep(time.Duration(50+rng.IntN(650)) * time.Millisecond)
		v := m.ownMetrics(t)
		unpushed += v["kata_monitor_scrape_failed_count"] + v[`kata_monitor_rounds_total{trigger="pull"}`]
		require.Equal(t, -1, m.stop(syscall.SIGKILL), "iteration %d: killed by the signal, not exited", i)
	}
	return m, downRuns, unpushed
}
