package forwarder

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// memRig is a forwarder over n in-memory shims (the shared exposition)
// pushing into a real remotewrite.Queue (real WAL in a temp dir) whose
// receiver answers 204, or 503 while down is set.
type memRig struct {
	*rig
	q    *remotewrite.Queue
	down atomic.Bool
	reqs atomic.Int64
	// body counts request body bytes received (the wire, without HTTP
	// headers).
	body atomic.Int64
	stop func()
}

func newMemRig(t testing.TB, n int) *memRig { return newMemRigURL(t, n, "") }

// newMemRigURL is newMemRig pushing to url instead, when url is not empty;
// opts adjust the endpoint's config.
func newMemRigURL(t testing.TB, n int, url string, opts ...func(*config.Config)) *memRig {
	t.Helper()
	m := &memRig{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		m.body.Add(n)
		m.reqs.Add(1)
		// A 2.0 receiver says what it wrote (the sender checks it).
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", "0")
		if m.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	cfg := config.DefaultConfig()
	cfg.URL, cfg.Name = srv.URL+"/api/v1/write", "mem"
	if url != "" {
		cfg.URL = url
	}
	cfg.QueueConfig.MinBackoff, cfg.QueueConfig.MaxBackoff = model.Duration(5*time.Millisecond), model.Duration(20*time.Millisecond)
	for _, o := range opts {
		o(&cfg)
	}
	wcfg := config.DefaultWALConfig()
	wcfg.Dir, wcfg.Fsync = t.TempDir(), "segment"
	q, err := remotewrite.New(cfg, wcfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	m.q = q
	m.rig = benchRig(t, n, func(_ *rig, _ *Config, d *Deps) { d.Appenders = []Appender{q} })
	m.f.jitterMax = 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	m.stop = func() {
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			m.stop()
		}
	})
	return m
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestMemoryProfile200 is a profiling harness, not a check: it runs
// scheduled rounds of 200 sandboxes into a real queue plus pulls, and writes
// the live heap to $KATA_MONITOR_HEAPPROFILE. Inspect with
// `go tool pprof -top -inuse_space forwarder.test FILE`.
func TestMemoryProfile200(t *testing.T) {
	out := os.Getenv("KATA_MONITOR_HEAPPROFILE")
	if out == "" {
		t.Skip("set KATA_MONITOR_HEAPPROFILE=file to profile the live heap at 200 sandboxes")
	}
	m := newMemRig(t, envInt("MEM_SANDBOXES", 200))
	ctx := context.Background()
	m.down.Store(os.Getenv("MEM_DOWN") != "")
	rounds := envInt("MEM_ROUNDS", 6)
	pushOnly := os.Getenv("MEM_PUSH_ONLY") != "" // no pulls: rounds render no pull lines
	if pushOnly {
		m.clock.Add(pullIdleAfter(m.f.cfg.ScrapeInterval))
	}
	for i := range rounds {
		m.f.scheduledRound(ctx)
		m.clock.Add(5 * time.Second)
		if !pushOnly {
			require.NoError(t, m.f.WriteMetrics(ctx, io.Discard, nil))
		}
		t.Logf("round %d: live heap %.1f MiB", i+1, float64(liveHeap())/(1<<20))
	}
	f, err := os.Create(out)
	require.NoError(t, err)
	runtime.GC()
	require.NoError(t, pprof.WriteHeapProfile(f))
	require.NoError(t, f.Close())
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
		url  func(t *testing.T) string // "" = the rig's receiver, answering 503
	}{
		{"503", func(*testing.T) string { return "" }},
		{"connection refused", refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const sandboxes, n = 10, 25
			m := newMemRigURL(t, sandboxes, tc.url(t))
			m.down.Store(true)
			ctx := context.Background()
			var atN uint64
			for i := 1; i <= 2*n; i++ {
				m.f.scheduledRound(ctx)
				m.clock.Add(5 * time.Second)
				require.NoError(t, m.f.WriteMetrics(ctx, io.Discard, nil))
				switch i {
				case n:
					atN = liveHeap()
				case 2 * n:
					at2N := liveHeap()
					t.Logf("live heap: round %d %.1f MiB, round %d %.1f MiB", n, float64(atN)/(1<<20), 2*n, float64(at2N)/(1<<20))
					require.LessOrEqual(t, float64(at2N), 1.2*float64(atN), "live heap grew during the outage")
				}
			}
			if tc.name == "503" {
				require.Positive(t, m.reqs.Load(), "the sender never tried the receiver")
			}
		})
	}
}
