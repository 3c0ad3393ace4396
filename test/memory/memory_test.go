package memory

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/forwarder"
	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/kata-containers/kata-monitor/test/background"
	"github.com/kata-containers/kata-monitor/test/fakeclock"
)

// shims are n in-memory sandboxes serving the shared exposition, each with
// pod metadata: the forwarder's Sandboxes, Pods and Scraper.
type shims struct {
	list []sandbox.Sandbox
	body []byte
}

func newShims(t testing.TB, n int) *shims {
	body, err := os.ReadFile("../testdata/kata-shim-metrics.prom")
	require.NoError(t, err)
	s := &shims{body: body}
	for i := range n {
		id := fmt.Sprintf("%064x", i+1)
		s.list = append(s.list, sandbox.Sandbox{ID: id, Socket: "/mem/" + id + "/shim-monitor.sock"})
	}
	return s
}

func (s *shims) List() []sandbox.Sandbox { return s.list }

func (s *shims) Lookup(string) (cri.Pod, bool) {
	return cri.Pod{UID: "0b5c7c0e-5d1a-4a5e-9b1c-1f7e9d3a2c11", Name: "web-7d9f8c6b5-x2k4q", Namespace: "default"}, true
}

func (s *shims) Scrape(_ context.Context, _ string, dst []byte) ([]byte, string, error) {
	return append(dst[:0], s.body...), "", nil
}

// gate is the forwarder's own-metrics Gatherer: the forwarder gathers after
// every scheduled round has been pushed and published, so gate stops it
// there (the forwarder idle, between rounds) until the test resumes it. It
// gathers nothing, so no own series are pushed: the heap is the shims'
// data path's, as in the daemon with push_self_metrics off.
type gate struct {
	arrived chan struct{}
	resume  chan struct{}
	done    chan struct{}
}

func (g *gate) Gather() ([]*dto.MetricFamily, error) {
	select {
	case g.arrived <- struct{}{}:
		select {
		case <-g.resume:
		case <-g.done:
		}
	case <-g.done:
	}
	return nil, nil
}

// rig is a running forwarder over n in-memory shims pushing into sink.
type rig struct {
	f     *forwarder.Forwarder
	gate  *gate
	clock *fakeclock.Clock
	// base is an interval boundary: round i starts at base+(i-1)*interval-1ms.
	base     time.Time
	interval time.Duration
}

// newRig starts the forwarder with scrape_interval and scrape_timeout
// interval (the scrapes' jitter is up to a tenth of it, in real time).
// Every pull runs a pull round (snapshot_max_age 0), as a Prometheus
// scraping once per interval would.
func newRig(t *testing.T, n int, interval time.Duration, sink *Sink) *rig {
	t.Helper()
	sh := newShims(t, n)
	reg := prometheus.NewRegistry()
	g := &gate{arrived: make(chan struct{}), resume: make(chan struct{}), done: make(chan struct{})}
	cfg := forwarder.DefaultConfig()
	cfg.ScrapeInterval, cfg.ScrapeTimeout, cfg.SnapshotMaxAge = interval, interval, 0
	r := &rig{gate: g, base: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), interval: cfg.ScrapeInterval}
	r.clock = fakeclock.New(r.base.Add(-time.Millisecond))
	f, err := forwarder.New(cfg, forwarder.Deps{Sandboxes: sh, Pods: sh, Scraper: sh,
		Appenders: []forwarder.Appender{sink.Queue}, Logger: slog.New(slog.DiscardHandler),
		Registerer: reg, Self: g, Now: r.clock.Now})
	require.NoError(t, err)
	background.Run(t, f.Run)
	t.Cleanup(func() { close(g.done) }) // first: a round held in Gather goes on
	r.f = f
	return r
}

// rounds waits for n scheduled rounds in turn; after each, while the
// forwarder waits between rounds, it calls between with the round's
// number (from 1), then sets the clock 1ms before the next round's
// boundary, so the rounds follow each other without waiting an interval
// (the scrapes' own timeouts stay real).
func (r *rig) rounds(t *testing.T, n int, between func(i int)) {
	t.Helper()
	for i := 1; i <= n; i++ {
		select {
		case <-r.gate.arrived:
		case <-time.After(2 * time.Minute):
			t.Fatalf("scheduled round %d did not finish in 2 minutes", i)
		}
		between(i)
		r.clock.Set(r.base.Add(time.Duration(i)*r.interval - time.Millisecond))
		r.gate.resume <- struct{}{}
	}
}

// TestMemoryProfile200 is a profiling harness, not a check: it runs
// scheduled rounds of 200 sandboxes into a real queue, each followed by a
// pull, and writes the live heap to $KATA_MONITOR_HEAPPROFILE. Inspect with
// `go tool pprof -top -inuse_space memory.test FILE`. MEM_SANDBOXES and
// MEM_ROUNDS (default 6) change the size, MEM_DOWN=1 makes the receiver
// answer 503, MEM_PUSH_ONLY=1 pulls nothing (rounds render no pull lines).
func TestMemoryProfile200(t *testing.T) {
	out := os.Getenv("KATA_MONITOR_HEAPPROFILE")
	if out == "" {
		t.Skip("set KATA_MONITOR_HEAPPROFILE=file to profile the live heap at 200 sandboxes")
	}
	sink := NewSink(t, "")
	sink.Down.Store(os.Getenv("MEM_DOWN") != "")
	r := newRig(t, EnvInt("MEM_SANDBOXES", 200), 2*time.Second, sink)
	pushOnly := os.Getenv("MEM_PUSH_ONLY") != ""
	r.rounds(t, EnvInt("MEM_ROUNDS", 6), func(i int) {
		if !pushOnly {
			require.NoError(t, r.f.WriteMetrics(context.Background(), io.Discard, nil))
		}
		t.Logf("round %d: live heap %.1f MiB", i, float64(LiveHeap())/(1<<20))
		if i < EnvInt("MEM_ROUNDS", 6) {
			return
		}
		f, err := os.Create(out)
		require.NoError(t, err)
		runtime.GC()
		require.NoError(t, pprof.WriteHeapProfile(f))
		require.NoError(t, f.Close())
	})
}

// TestMemoryFlatDuringOutage: while the receiver is down every round goes
// to the WAL's disk and the sender retries; the live heap must not grow
// with the backlog (the WAL keeps a bounded in-memory tail, the rest is on
// disk). The heap after GC at round 2N must be within 20% of round N, once
// the memory tail is full (it is after a few rounds here).
func TestMemoryFlatDuringOutage(t *testing.T) {
	refused := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		return "http://" + addr + "/api/v1/write"
	}
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string // "" = the sink's receiver, answering 503
	}{
		{"503", func(*testing.T) string { return "" }},
		{"connection refused", refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const sandboxes, n = 10, 25
			sink := NewSink(t, tc.url(t))
			sink.Down.Store(true)
			r := newRig(t, sandboxes, time.Second, sink)
			var atN uint64
			r.rounds(t, 2*n, func(i int) {
				require.NoError(t, r.f.WriteMetrics(context.Background(), io.Discard, nil))
				switch i {
				case n:
					atN = LiveHeap()
				case 2 * n:
					at2N := LiveHeap()
					t.Logf("live heap: round %d %.1f MiB, round %d %.1f MiB", n, float64(atN)/(1<<20), 2*n, float64(at2N)/(1<<20))
					require.LessOrEqual(t, float64(at2N), 1.2*float64(atN), "live heap grew during the outage")
				}
			})
			if tc.name == "503" {
				require.Positive(t, sink.Requests.Load(), "the sender never tried the receiver")
			}
		})
	}
}
