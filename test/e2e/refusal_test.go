package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/faultproxy"
	"github.com/kata-containers/kata-monitor/test/receiver"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

// Issue 10: what real receivers and proxies answer must cost only what
// they refuse. The status policy is in docs/remote-write.md.

// TestRefusalPrometheusIsolatesSeries: the real Prometheus 2.42 answers
// 400 to a whole request when one sample in it is out of order or a
// duplicate with another value. The sender splits the request down to
// those series: only they are dropped, every other series of the round is
// stored. The queue runs in-process here, so the samples reach Prometheus
// exactly as built (the daemon's forwarder would drop them before the
// queue).
func TestRefusalPrometheusIsolatesSeries(t *testing.T) {
	t.Parallel()
	prom := startReceiver(t, receiver.Prometheus)
	q, reg := runQueue(t, prom.WriteURL(), "prom")
	ctx := context.Background()

	const nSeries, outOfOrder, duplicate = 200, 17, 150
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	round := func(r int) []series.Series {
		out := make([]series.Series, nSeries)
		for i := range out {
			ts := base.Add(time.Duration(r) * time.Second).UnixMilli()
			v := float64(r)
			switch {
			case r == 2 && i == outOfOrder:
				ts = base.Add(-10 * time.Second).UnixMilli() // before round 1's sample
			case r == 2 && i == duplicate:
				ts, v = base.Add(time.Second).UnixMilli(), 99 // round 1's timestamp, another value
			}
			out[i] = series.Series{
				Labels:  []labels.Label{{Name: "__name__", Value: "e2e_refusal"}, {Name: "idx", Value: fmt.Sprintf("%03d", i)}},
				Samples: []series.Sample{{Timestamp: ts, Value: v}},
			}
		}
		return out
	}
	metric := func(name string) float64 { return gathered(t, reg, name) }
	// One round at a time, so each is a request of its own.
	for r := 1; r <= 3; r++ {
		require.NoError(t, q.Append(ctx, round(r)))
		want := float64(r * nSeries)
		waitFor(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
			done := metric("kata_monitor_remote_write_samples_sent_total") + metric("kata_monitor_remote_write_samples_dropped_total")
			return done == want, fmt.Sprintf("round %d: sent+dropped %.0f of %.0f", r, done, want)
		})
	}
	sent, dropped := metric("kata_monitor_remote_write_samples_sent_total"), metric("kata_monitor_remote_write_samples_dropped_total")
	require.Equal(t, 2.0, dropped, "only the two refused samples dropped")
	require.Equal(t, float64(3*nSeries-2), sent)
	require.Equal(t, metric("kata_monitor_remote_write_samples_appended_total"), sent+dropped, "appended = sent + dropped")

	got, err := prom.Export(ctxT(t), `e2e_refusal`, base, time.Now())
	require.NoError(t, err)
	require.Len(t, got, nSeries)
	for _, s := range got {
		want := 3
		if s.Labels["idx"] == fmt.Sprintf("%03d", outOfOrder) || s.Labels["idx"] == fmt.Sprintf("%03d", duplicate) {
			want = 2
		}
		require.Len(t, s.Values, want, "series %s", s.Labels["idx"])
	}
	requests := metric("kata_monitor_remote_write_requests_total")
	splits := metric("kata_monitor_remote_write_request_splits_total")
	// Two refused series among 200: at most 2*2*ceil(log2 200) extra.
	require.LessOrEqual(t, requests, 3+2*2*math.Ceil(math.Log2(nSeries)))
	result(t, "Prometheus 2.42 refused a 200-series request (400: one out-of-order and one duplicate sample): split %.0f times, %.0f requests for 3 rounds; dropped(refused) %.0f = exactly the 2 bad samples; sent %.0f; every other series has all 3 rounds",
		splits, requests, dropped, sent)
}

// refusalCase runs kata-monitor pushing to VictoriaMetrics through a fault
// proxy and checks, after quiescing, that appended = received + dropped
// exactly and that no sandbox lost a round beyond what dropped says.
type refusalCase struct {
	name string
	// extra YAML for the endpoint (4-space indented lines).
	extra func(t *testing.T) string
	// setup installs the faults; during runs while rounds go on, and
	// returns when the fault has been seen and (if it ends) has ended.
	setup  func(p *faultproxy.Proxy)
	during func(t *testing.T, m *monitor, p *faultproxy.Proxy)
	check  func(t *testing.T, m *monitor, a account, st faultproxy.Stats, self selfmetrics.Values) string
}

// TestRefusalPolicy plays the status policy's rows against the real
// binary: one series refused with 400 inside every request (only it
// dropped), 408 for a while, 413 above 1,000 samples, and 401/403 until
// the credentials file is fixed (nothing dropped).
// Long for its table of six cases, each run against the real binary.
func TestRefusalPolicy(t *testing.T) {
	t.Parallel()
	const poison = "kata_hypervisor_threads"
	poisonID := fakenode.ID(0) // every node numbers its sandboxes alike
	cases := []refusalCase{
		{
			name: "400-one-series",
			setup: func(p *faultproxy.Proxy) {
				p.SetFaults(func(_ int64, req *prompb.WriteRequest) faultproxy.Fault {
					for _, ts := range req.Timeseries {
						if label(ts, "__name__") == poison && label(ts, "sandbox_id") == poisonID {
							return faultproxy.Fault{Status: http.StatusBadRequest}
						}
					}
					return faultproxy.Fault{}
				})
			},
			during: func(t *testing.T, m *monitor, p *faultproxy.Proxy) {
				waitFor(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
					return p.Stats().RejectedAloneSamples >= 8, fmt.Sprintf("%d refused alone", p.Stats().RejectedAloneSamples)
				})
			},
			check: func(t *testing.T, m *monitor, a account, st faultproxy.Stats, self selfmetrics.Values) string {
				require.Equal(t, float64(st.RejectedAloneSamples), a.refused, "dropped == the poisoned series' samples, exactly")
				require.Equal(t, a.refused, a.dropped(), "nothing else dropped: %s", a)
				return fmt.Sprintf("400 for every request holding one series (%s of one sandbox): dropped(refused) %.0f = exactly that series' samples; %.0f splits; received %d",
					poison, a.refused, self["kata_monitor_remote_write_request_splits_total"], st.ForwardedSamples)
			},
		},
		{
			name:   "408-for-6s",
			setup:  answerFor(http.StatusRequestTimeout, 6*time.Second),
			during: failingThenHealthy,
			check: func(t *testing.T, m *monitor, a account, st faultproxy.Stats, self selfmetrics.Values) string {
				require.Zero(t, a.dropped(), "%s", a)
				n408 := self[`kata_monitor_remote_write_requests_total{code="408",endpoint="vm"}`]
				require.Positive(t, n408)
				return fmt.Sprintf("408 for 6 s: %.0f requests answered 408, retried; dropped 0 (before: 7,590 of 6 s dropped); failing_since set during, 0 after; received %d",
					n408, st.ForwardedSamples)
			},
		},
		{
			// A gateway or a wrong url answering 400 to everything, naming
			// no cause: nothing shows the data is refused, so nothing is
			// dropped; the blocks wait and go once it answers 2xx.
			name:   "400-for-everything-6s",
			setup:  answerFor(http.StatusBadRequest, 6*time.Second),
			during: failingThenHealthy,
			check: func(t *testing.T, m *monitor, a account, st faultproxy.Stats, self selfmetrics.Values) string {
				require.Zero(t, a.dropped(), "%s", a)
				require.Positive(t, st.RejectedAloneSamples, "the split went down to single series")
				n400 := self[`kata_monitor_remote_write_requests_total{code="400",endpoint="vm"}`]
				return fmt.Sprintf("400 naming no cause to every request for 6 s: %.0f requests answered 400 (split probes down to single series included), kept and retried; dropped 0; received %d",
					n400, st.ForwardedSamples)
			},
		},
		{
			name: "413-above-1000",
			setup: func(p *faultproxy.Proxy) {
				p.SetFaults(func(_ int64, req *prompb.WriteRequest) faultproxy.Fault {
					if samplesIn(req) > 1000 {
						return faultproxy.Fault{Status: http.StatusRequestEntityTooLarge}
					}
					return faultproxy.Fault{}
				})
			},
			during: func(t *testing.T, m *monitor, p *faultproxy.Proxy) {
				waitFor(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
					return p.Stats().ForwardedSamples > 10000, "received " + fmt.Sprint(p.Stats().ForwardedSamples)
				})
			},
			check: func(t *testing.T, m *monitor, a account, st faultproxy.Stats, self selfmetrics.Values) string {
				require.Zero(t, a.dropped(), "%s", a)
				limit := self[`kata_monitor_remote_write_max_samples_per_send{endpoint="vm"}`]
				require.LessOrEqual(t, limit, 1000.0, "smaller size remembered")
				n413 := self[`kata_monitor_remote_write_requests_total{code="413",endpoint="vm"}`]
				require.LessOrEqual(t, n413, 3.0, "the size is learnt once")
				return fmt.Sprintf("413 above 1,000 samples (default 2,000 per request; a round of 2 sandboxes is 1,518): %.0f answers 413, then max_samples_per_send %.0f; dropped 0 (before: everything); received %d",
					n413, limit, st.ForwardedSamples)
			},
		},
		authCase(http.StatusUnauthorized),
		authCase(http.StatusForbidden),
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			node := startNode(t, 2)
			require.Equal(t, poisonID, node.IDs()[0])
			vm, p, url := proxied(t, receiver.VictoriaMetrics)
			start := time.Now()
			if tc.setup != nil {
				tc.setup(p)
			}
			extra := noMetadata
			if tc.extra != nil {
				extra += tc.extra(t)
			}
			cfg := writeConfig(t, "250ms", t.TempDir(), "64MiB", endpoint{name: "vm", url: url, extra: extra})
			m := startMonitor(t, node, "--config", cfg)
			ids := node.IDs()
			tc.during(t, m, p)
			a := quiesce(t, m, node, "vm", 60*time.Second)
			st := p.Stats()
			self := m.ownMetrics(t)
			require.Equal(t, float64(st.ForwardedSamples), a.sent, "sent == received")
			require.Equal(t, a.appended, float64(st.ForwardedSamples)+a.dropped(), "appended == received + dropped: %s", a)
			require.Zero(t, a.pending)
			for _, id := range ids {
				s, _ := counterSeries(t, vm, id, start)
				g := gaps(t, s)
				require.LessOrEqual(t, missing(g), a.unpushed, "every round of %s arrived: gaps %v", id, g)
			}
			if tc.name == "400-one-series" {
				got, err := vm.Export(ctxT(t), fmt.Sprintf(`%s{sandbox_id=%q}`, poison, ids[0]), start, time.Now())
				require.NoError(t, err)
				require.Empty(t, got, "the refused series never arrived")
				got, err = vm.Export(ctxT(t), fmt.Sprintf(`%s{sandbox_id=%q}`, poison, ids[1]), start, time.Now())
				require.NoError(t, err)
				require.Len(t, got, 1, "the same family of the healthy sandbox arrived")
			}
			summary := tc.check(t, m, a, st, self)
			result(t, "%s; %s", summary, a)
		})
	}
}

// authCase: the receiver answers code until the bearer token file holds
// the right token; fixing the file (no restart) delivers everything.
func authCase(code int) refusalCase {
	var tokenFile string
	return refusalCase{
		name: fmt.Sprintf("%d-until-credentials-fixed", code),
		extra: func(t *testing.T) string {
			tokenFile = filepath.Join(t.TempDir(), "token")
			require.NoError(t, os.WriteFile(tokenFile, []byte("expired"), 0o600))
			return fmt.Sprintf("    authorization: {credentials_file: %s}\n", tokenFile)
		},
		setup: func(p *faultproxy.Proxy) {
			p.SetHTTPFaults(func(_ int64, r *http.Request, _ *prompb.WriteRequest) faultproxy.Fault {
				if r.Header.Get("Authorization") != "Bearer good" {
					return faultproxy.Fault{Status: code}
				}
				return faultproxy.Fault{}
			})
		},
		during: func(t *testing.T, m *monitor, p *faultproxy.Proxy) {
			key := fmt.Sprintf(`kata_monitor_remote_write_requests_total{code="%d",endpoint="vm"}`, code)
			waitFor(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
				v := m.ownMetrics(t)
				return v[key] >= 5 && v["kata_monitor_remote_write_failing_since_timestamp_seconds"] > 0, fmt.Sprintf("%.0f answers %d", v[key], code)
			})
			require.NoError(t, os.WriteFile(tokenFile, []byte("good"), 0o600))
			waitFor(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
				v := m.ownMetrics(t)
				return v["kata_monitor_remote_write_failing_since_timestamp_seconds"] == 0 && p.Stats().ForwardedSamples > 0, "not recovered"
			})
		},
		check: func(t *testing.T, m *monitor, a account, st faultproxy.Stats, self selfmetrics.Values) string {
			require.Zero(t, a.dropped(), "%s", a)
			n := self[fmt.Sprintf(`kata_monitor_remote_write_requests_total{code="%d",endpoint="vm"}`, code)]
			return fmt.Sprintf("%d until the credentials file was fixed (no restart): %.0f answers %d retried, %.0f samples failed then delivered; dropped 0; received %d",
				code, n, code, self[`kata_monitor_remote_write_samples_failed_total{endpoint="vm"}`], st.ForwardedSamples)
		},
	}
}

func label(ts prompb.TimeSeries, name string) string {
	for _, l := range ts.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// TestLagFromStart (issue 10, item 4): with a receiver never reachable
// since start, queue_lag_seconds grows with the age of the oldest queued
// sample (it read 0 until a first successful send), and after a restart
// it still counts from that sample.
func TestLagFromStart(t *testing.T) {
	t.Parallel()
	node := startNode(t, 1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + l.Addr().String() + "/api/v1/write"
	require.NoError(t, l.Close()) // nothing listens: connection refused
	cfg := writeConfig(t, "250ms", t.TempDir(), "64MiB", endpoint{name: "down", url: url, extra: noMetadata})
	started := time.Now()
	m := startMonitor(t, node, "--config", cfg)
	lag := func() float64 { return m.ownMetrics(t)[`kata_monitor_remote_write_queue_lag_seconds{endpoint="down"}`] }
	waitFor(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		return lag() >= 3, fmt.Sprintf("lag %.2f s", lag())
	})
	first := lag()
	waitFor(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		return lag() >= first+2, fmt.Sprintf("lag %.2f s, was %.2f", lag(), first)
	})
	// The books are read once rounds stopped appending (pause): the
	// counters and the pending gauge are separate metrics, so a read while
	// a round is being appended may see one of them moved and not the other.
	a := pause(t, m, node, "down")
	require.Positive(t, a.pending)
	require.Zero(t, a.sent)
	require.Equal(t, a.appended, a.pending, "appended = pending: nothing sent or dropped")
	before := lag()
	elapsed := time.Since(started).Seconds()
	require.LessOrEqual(t, before, elapsed+1, "no older than the process")
	require.Equal(t, 0, m.stop(syscall.SIGTERM))
	m.start()
	after := lag()
	require.GreaterOrEqual(t, after, before, "after a restart, still the oldest queued sample")
	result(t, "receiver never reachable since start: queue_lag_seconds %.1f s after %.1f s of running (before the fix: 0), %.1f s right after a restart; %.0f samples pending, 0 sent, 0 dropped",
		before, elapsed, after, a.pending)
}

// TestStrandedQueueAdopted (issue 10, item 3): a backlog queued for a URL
// without `name`, then the same receiver written localhost instead of
// 127.0.0.1: the old directory is reported at start (warning with pending
// samples and the gauge), and giving the endpoint the directory's name
// delivers every pending sample.
// Long because it is one story across restarts of the daemon, each run
// needing the WAL the last one left.
func TestStrandedQueueAdopted(t *testing.T) {
	t.Parallel()
	node := startNode(t, 2)
	vm, p, url := proxied(t, receiver.VictoriaMetrics)
	down(p)
	walDir := t.TempDir()
	conf := func(name, url string) string {
		y := fmt.Sprintf("global:\n  scrape_interval: 250ms\n  scrape_timeout: 250ms\n  push_self_metrics: false\nwal:\n  dir: %s\nremote_write:\n  - url: %s\n    queue_config: {min_backoff: 50ms, max_backoff: 500ms}\n%s", walDir, url, noMetadata)
		if name != "" {
			y = strings.Replace(y, "  - url:", "  - name: "+name+"\n    url:", 1)
		}
		return configFile(t, y)
	}
	sum := sha256.Sum256([]byte(url))
	oldDir := hex.EncodeToString(sum[:])[:6]
	localURL := strings.Replace(url, "127.0.0.1", "localhost", 1)
	require.NotEqual(t, url, localURL)
	sum = sha256.Sum256([]byte(localURL))
	newDir := hex.EncodeToString(sum[:])[:6]

	ids := node.IDs()
	// Run 1: receiver down, a backlog builds up.
	m := startMonitor(t, node, "--config", conf("", url))
	waitFor(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		a := m.account(t, oldDir)
		return a.pending >= 5000, a.String()
	})
	// Scrapes that failed before the pause (a timeout on a loaded host)
	// leave holes of their own; the pause's failures are its one hole.
	unpushed := m.account(t, oldDir).unpushed
	first := pause(t, m, node, oldDir)
	require.Equal(t, 0, m.stop(syscall.SIGTERM))
	backlog := first.pending
	require.Equal(t, first.appended, backlog, "nothing sent yet")

	// Run 2: the same receiver spelled localhost: reported, not sent.
	m.args[len(m.args)-1] = conf("", localURL)
	m.start()
	waitFor(t, 10*time.Second, 100*time.Millisecond, func() (bool, string) {
		return strings.Contains(m.log.String(), "queue directory owned by no remote_write endpoint"), "no warning yet"
	})
	logLine := ""
	for _, line := range strings.Split(m.log.String(), "\n") {
		if strings.Contains(line, "queue directory owned by no remote_write endpoint") {
			logLine = line
		}
	}
	require.Contains(t, logLine, "level=WARN")
	require.Contains(t, logLine, fmt.Sprintf("pending_samples=%.0f", backlog))
	require.Contains(t, logLine, "oldest_sample=")
	self := m.ownMetrics(t)
	require.Equal(t, backlog, self[fmt.Sprintf(`kata_monitor_remote_write_orphaned_queue_pending_samples{dir=%q}`, oldDir)])
	require.Positive(t, self[fmt.Sprintf(`kata_monitor_remote_write_orphaned_queue_oldest_timestamp_seconds{dir=%q}`, oldDir)])
	require.Equal(t, 0, m.stop(syscall.SIGTERM))

	// Run 3: adopt by name, receiver up: the backlog is delivered.
	resume(node)
	p.SetFaults(nil)
	m.args[len(m.args)-1] = conf(oldDir, localURL)
	m.start()
	a := quiesce(t, m, node, oldDir, 60*time.Second)
	st := p.Stats()
	require.Zero(t, a.dropped(), "%s", a)
	require.Equal(t, backlog+a.appended, a.sent, "the whole backlog and the new rounds were sent: %s", a)
	require.Equal(t, float64(st.ForwardedSamples), a.sent, "received == sent")
	self = m.ownMetrics(t)
	require.Contains(t, self, fmt.Sprintf(`kata_monitor_remote_write_orphaned_queue_pending_samples{dir=%q}`, newDir), "run 2's own directory is reported in turn")
	// Every round scraped before the first stop arrived (the pause's 503
	// scrapes and run 2 push nothing of this sandbox's counter).
	s, _ := counterSeries(t, vm, ids[0], time.Now().Add(-10*time.Minute))
	g := gaps(t, s)
	require.LessOrEqual(t, len(g), 1+int(unpushed+a.unpushed), "at most the pause's hole (and %.0f+%.0f unpushed scrapes): %v", unpushed, a.unpushed, g)
	result(t, "URL spelled localhost instead of 127.0.0.1 across a restart with %.0f samples pending: reported (warning with pending_samples and oldest_sample, orphaned_queue_pending_samples %.0f); after setting name: %s, all %.0f delivered, dropped 0",
		backlog, backlog, oldDir, backlog)
}

// answerFor makes the proxy answer code to every request for d, starting
// after two delivered requests (some rounds arrive first).
func answerFor(code int, d time.Duration) func(p *faultproxy.Proxy) {
	return func(p *faultproxy.Proxy) {
		var mu sync.Mutex
		var first time.Time
		p.SetFaults(func(n int64, _ *prompb.WriteRequest) faultproxy.Fault {
			if n < 3 {
				return faultproxy.Fault{}
			}
			mu.Lock()
			if first.IsZero() {
				first = time.Now()
			}
			since := time.Since(first)
			mu.Unlock()
			if since < d {
				return faultproxy.Fault{Status: code}
			}
			return faultproxy.Fault{}
		})
	}
}

// failingThenHealthy waits until failing_since is set, then until it is 0
// again: the failure streak was visible and ended.
func failingThenHealthy(t *testing.T, m *monitor, _ *faultproxy.Proxy) {
	waitFor(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		v := m.ownMetrics(t)["kata_monitor_remote_write_failing_since_timestamp_seconds"]
		return v > 0, "failing_since not set"
	})
	waitFor(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		v := m.ownMetrics(t)["kata_monitor_remote_write_failing_since_timestamp_seconds"]
		return v == 0, "still failing"
	})
}
