package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/faultproxy"
	"github.com/kata-containers/kata-monitor/test/receiver"
)

// probeVariant is what a probe run does to the shims around the outage.
type probeVariant int

const (
	variantPlain  probeVariant = iota
	variantHang                // one shim hangs from mid-outage to 3 s after recovery
	variantFlaky               // one shim's latency varies around scrape_timeout from the outage on
	variant503                 // one shim answers 503 from 1 s before to 2 s after recovery
	variantVanish              // one sandbox disappears mid-outage
	variants
)

func (v probeVariant) String() string {
	return [...]string{"plain", "hang", "flaky", "503", "vanish"}[v]
}

// TestProbeBooksMimirOutage is a soak probe, skipped unless KATA_PROBE_RUNS
// is set: that many runs of TestTenantsMimirOutageBeyondWindow's scenario
// (3 sandboxes, a tenant each, an outage longer than Mimir's window) against
// one Mimir, KATA_PROBE_PAR (default 1) at a time, the runs taking turns
// among the variants above so that scrapes fail around the outage. Each run
// settles every tenant's books exactly (storedBooks: sent = acknowledged,
// each acknowledged sample stored, staleness markers included) and logs,
// per tenant, the counts and how many samples a PromQL query sees, which
// leaves out the markers. KATA_PROBE_WINDOW and KATA_PROBE_OUTAGE change
// the window (20s) and the outage (35s); KATA_PROBE_LOG appends the lines
// to a file. KATA_PROBE_MODE=lose makes the outage one of lost answers
// (every request reaches Mimir, no answer reaches kata-monitor:
// faultproxy's LoseAnswer) instead of 503s; mixed alternates the two.
// Example:
//
//	KATA_PROBE_RUNS=30 KATA_PROBE_PAR=3 KATA_PROBE_LOG=/tmp/probe.log go test -run TestProbeBooksMimirOutage -timeout 60m ./test/e2e
func TestProbeBooksMimirOutage(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("KATA_PROBE_RUNS"))
	if runs == 0 {
		t.Skip("KATA_PROBE_RUNS not set")
	}
	par, _ := strconv.Atoi(os.Getenv("KATA_PROBE_PAR"))
	par = max(par, 1)
	window, outage := 20*time.Second, 35*time.Second
	if d, err := time.ParseDuration(os.Getenv("KATA_PROBE_WINDOW")); err == nil {
		window = d
	}
	if d, err := time.ParseDuration(os.Getenv("KATA_PROBE_OUTAGE")); err == nil {
		outage = d
	}
	mimir := startDistributed(t, receiver.Mimir, nil,
		"-distributor.ingestion-rate-limit=1000000", "-distributor.ingestion-burst-size=10000000",
		fmt.Sprintf("-validation.past-grace-period=%s", window))
	logf := io.Discard
	if path := os.Getenv("KATA_PROBE_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		require.NoError(t, err)
		defer f.Close()
		logf = f
	}
	var logMu sync.Mutex
	mode := os.Getenv("KATA_PROBE_MODE")
	for b := 0; b < runs; b += par {
		t.Run(fmt.Sprintf("batch%d", b/par), func(t *testing.T) {
			for i := b; i < min(b+par, runs); i++ {
				v := probeVariant(i % int(variants))
				lose := mode == "lose" || mode == "mixed" && i%2 == 1
				name := fmt.Sprintf("run%d-%s", i, v)
				if lose {
					name += "-lose"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					lines := probeRun(t, mimir, i, v, lose, window, outage)
					logMu.Lock()
					for _, ln := range lines {
						fmt.Fprintf(logf, "%s %s %s\n", time.Now().Format(time.TimeOnly), name, ln)
					}
					logMu.Unlock()
				})
			}
		})
	}
}

func probeRun(t *testing.T, mimir *receiver.Receiver, run int, v probeVariant, lose bool, window, outage time.Duration) []string {
	ns := []string{fmt.Sprintf("p%d-a", run), fmt.Sprintf("p%d-b", run), fmt.Sprintf("p%d-c", run)}
	p, err := faultproxy.New(mimir.WriteURL())
	require.NoError(t, err)
	p.RecordAcked(receiver.Mimir.TenantHeader())
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	const n = 3
	node := tenantNodeIn(t, n, ns)
	start := time.Now()
	cfg := writeConfig(t, "500ms", t.TempDir(), "64MiB", endpoint{name: "mimir", url: srv.URL + "/api/v1/push",
		extra: "    tenant: {label: cri_namespace}\n" + noMetadata})
	m := startMonitor(t, node, "--config", cfg)
	ids := node.IDs()
	victim := node.Shim(ids[1])

	waitFor(t, 60*time.Second, 500*time.Millisecond, func() (bool, string) {
		for _, tn := range ns {
			_, sent, _, _ := tenantValues(m.ownMetrics(t), "mimir", tn)
			if sent == 0 {
				return false, "nothing sent to " + tn + " yet"
			}
		}
		return true, ""
	})
	stopFlaky := make(chan struct{})
	flakyDone := make(chan struct{})
	if v == variantFlaky {
		// Latency around scrape_timeout (500 ms): some scrapes fail.
		go func() {
			defer close(flakyDone)
			tk := time.NewTicker(300 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stopFlaky:
					victim.SetLatency(0)
					return
				case <-tk.C:
					victim.SetLatency(time.Duration(300+rand.IntN(400)) * time.Millisecond)
				}
			}
		}()
	} else {
		close(flakyDone)
	}
	if lose {
		// Every request reaches Mimir, but its answer never comes back.
		p.SetFaults(func(int64, *prompb.WriteRequest) faultproxy.Fault { return faultproxy.Fault{LoseAnswer: true} })
	} else {
		down(p)
	}
	outageStart := time.Now()
	wait := func(d time.Duration) {
		waitFor(t, 2*d+10*time.Second, 200*time.Millisecond, func() (bool, string) {
			return time.Since(outageStart) >= d, "outage"
		})
	}
	wait(outage / 2)
	switch v {
	case variantHang:
		victim.SetHang(true)
	case variantVanish:
		require.NoError(t, node.Remove(ids[1]))
	}
	wait(outage - time.Second)
	if v == variant503 {
		victim.SetStatus(http.StatusServiceUnavailable)
	}
	wait(outage)
	p.SetFaults(nil)
	recovered := time.Now()
	after := func(d time.Duration) {
		waitFor(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
			return time.Since(recovered) >= d, "after recovery"
		})
	}
	after(2 * time.Second)
	if v == variant503 {
		victim.SetStatus(0)
	}
	after(3 * time.Second)
	if v == variantHang {
		victim.SetHang(false)
	}
	after(5 * time.Second)
	close(stopFlaky)
	<-flakyDone
	for _, id := range node.IDs() {
		require.NoError(t, node.Remove(id))
	}
	var out []string
	failed := m.ownMetrics(t)["kata_monitor_scrape_failed_count"]
	for _, tn := range ns {
		app, sent, dropped, _ := settled(t, m, "mimir", tn)
		problems, kept := storedBooks(ctxT(t), mimir, p, tn, sent, start)
		for try := 0; len(problems) > 0 && try < 5; try++ {
			time.Sleep(time.Second) // probe only: does a second look change it?
			problems, kept = storedBooks(ctxT(t), mimir, p, tn, sent, start)
		}
		acked := p.Acked(tn)
		// What a PromQL count sees: no staleness markers.
		q, err := mimir.ForTenant(tn).Export(ctxT(t), `{__name__=~".+"}`, start.Add(-time.Minute), time.Now())
		require.NoError(t, err)
		queried := 0
		for _, s := range q {
			queried += len(s.Values)
		}
		line := fmt.Sprintf("tenant %s: appended %.0f sent %.0f dropped %v | acked %d (distinct %d, markers %d) | queried %d | kept-refused %d | scrape_failed(node) %.0f | problems %d",
			tn, app, sent, dropped, acked.Count, len(acked.Values), markers(acked), queried, kept, failed, len(problems))
		out = append(out, line)
		t.Log(line)
		if len(problems) > 0 {
			t.Errorf("tenant %s: %s\n%s", tn, line, joinLines(problems))
			out = append(out, problems...)
		}
	}
	return out
}
