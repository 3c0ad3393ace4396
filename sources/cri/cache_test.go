package cri_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/test/background"
	"github.com/kata-containers/kata-monitor/test/fakecri"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

const (
	waitFor = 10 * time.Second
	tick    = 5 * time.Millisecond
)

// syncBuffer collects log output from the Run goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type harness struct {
	cache *cri.Cache
	reg   *prometheus.Registry
	logs  *syncBuffer
	sock  string
}

func startFake(t *testing.T, sock string) *fakecri.Server {
	t.Helper()
	srv, err := fakecri.Start(sock)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

func testConfig(endpoint string) cri.Config {
	return cri.Config{
		Endpoint:           endpoint,
		Timeout:            2 * time.Second,
		RefreshInterval:    time.Hour, // only the behaviour under test refreshes
		MinRefreshInterval: 10 * time.Millisecond,
	}
}

func newCache(t *testing.T, cfg cri.Config) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := cri.New(cfg, logger, h.reg)
	require.NoError(t, err)
	h.cache = c
	return h
}

// run runs the cache until the test ends and checks that Run returns nil
// promptly once cancelled.
func (h *harness) run(t *testing.T) {
	t.Helper()
	background.Run(t, h.cache.Run)
}

func (h *harness) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m.GetLabel(), labels) {
				switch {
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func hasLabels[L interface {
	GetName() string
	GetValue() string
}](have []L, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range have {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func lookupEventually(t *testing.T, c *cri.Cache, id string, want cri.Pod) {
	t.Helper()
	require.Eventually(t, func() bool {
		p, ok := c.Lookup(id)
		return ok && p == want
	}, waitFor, tick, "pod of %s never showed up", id)
}

var (
	podA = cri.Pod{UID: "uid-a", Name: "pod-a", Namespace: "ns-a"}
	podB = cri.Pod{UID: "uid-b", Name: "pod-b", Namespace: "ns-b"}
)

func TestRefreshThenLookup(t *testing.T) {
	sock := filepath.Join(sockets.Dir(t), "cri.sock")
	srv := startFake(t, sock)
	srv.SetPod("a", podA)
	srv.SetPod("b", podB)
	h := newCache(t, testConfig(sock))
	h.run(t)

	require.NoError(t, h.cache.Refresh(context.Background()))
	p, ok := h.cache.Lookup("a")
	require.True(t, ok)
	require.Equal(t, podA, p)
	p, ok = h.cache.Lookup("b")
	require.True(t, ok)
	require.Equal(t, podB, p)
	_, ok = h.cache.Lookup("c")
	require.False(t, ok)

	require.Equal(t, 1.0, h.metric(t, "kata_monitor_cri_up"))
	require.Equal(t, 2.0, h.metric(t, "kata_monitor_cri_pods"))
	require.GreaterOrEqual(t, h.metric(t, "kata_monitor_cri_requests_total", "result", "success"), 1.0)
	require.Equal(t, 0.0, h.metric(t, "kata_monitor_cri_requests_total", "result", "error"))

	// A pod gone from the runtime leaves the cache at the next refresh.
	srv.RemovePod("a")
	require.NoError(t, h.cache.Refresh(context.Background()))
	_, ok = h.cache.Lookup("a")
	require.False(t, ok)
	require.Equal(t, 1.0, h.metric(t, "kata_monitor_cri_pods"))
}

func TestEndpointForms(t *testing.T) {
	for _, tt := range []struct {
		name     string
		endpoint func(sock string) string
	}{
		{name: "path", endpoint: func(s string) string { return s }},
		{name: "unix url", endpoint: func(s string) string { return "unix://" + s }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(sockets.Dir(t), "cri.sock")
			srv := startFake(t, sock)
			srv.SetPod("a", podA)
			h := newCache(t, testConfig(tt.endpoint(sock)))
			h.run(t)
			require.NoError(t, h.cache.Refresh(context.Background()))
			p, ok := h.cache.Lookup("a")
			require.True(t, ok)
			require.Equal(t, podA, p)
		})
	}
}

func TestUnknownIDTriggersRefresh(t *testing.T) {
	sock := filepath.Join(sockets.Dir(t), "cri.sock")
	srv := startFake(t, sock)
	h := newCache(t, testConfig(sock))
	h.run(t)
	require.Eventually(t, func() bool { return srv.ListCalls() >= 1 }, waitFor, tick, "no refresh at start")

	// RefreshInterval is an hour: only the lookup can bring the pod in.
	srv.SetPod("late", podB)
	lookupEventually(t, h.cache, "late", podB)
}

func TestCRIDownAtStartThenUp(t *testing.T) {
	sock := filepath.Join(sockets.Dir(t), "cri.sock")
	h := newCache(t, testConfig(sock)) // New must not need the runtime
	h.run(t)

	// Several failed refreshes (each unknown lookup asks for one)...
	require.Eventually(t, func() bool {
		h.cache.Lookup("a")
		return h.metric(t, "kata_monitor_cri_requests_total", "result", "error") >= 3
	}, waitFor, tick)
	require.Equal(t, 0.0, h.metric(t, "kata_monitor_cri_up"))
	_, ok := h.cache.Lookup("a")
	require.False(t, ok)

	srv := startFake(t, sock)
	srv.SetPod("a", podA)
	lookupEventually(t, h.cache, "a", podA)
	// The pods are in the cache before Refresh sets cri_up, and Run logs
	// the recovery once Refresh returned: wait for each, not for the pod.
	require.Eventually(t, func() bool { return h.metric(t, "kata_monitor_cri_up") == 1 }, waitFor, tick, "cri_up never 1")
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), "cri reachable again") }, waitFor, tick,
		"recovery never logged")

	// ...are logged once, and the recovery once.
	logs := h.logs.String()
	require.Equal(t, 1, strings.Count(logs, "cri unreachable"), logs)
	require.Equal(t, 1, strings.Count(logs, "cri reachable again"), logs)
}

func TestCRIGoingAwayAndBack(t *testing.T) {
	sock := filepath.Join(sockets.Dir(t), "cri.sock")
	srv := startFake(t, sock)
	srv.SetPod("a", podA)
	h := newCache(t, testConfig(sock))
	h.run(t)
	lookupEventually(t, h.cache, "a", podA)

	srv.Close()
	require.Eventually(t, func() bool {
		h.cache.Lookup("unknown")
		return h.metric(t, "kata_monitor_cri_up") == 0
	}, waitFor, tick)
	p, ok := h.cache.Lookup("a")
	require.True(t, ok, "known pods stay while the runtime is away")
	require.Equal(t, podA, p)

	// The runtime restarts on the same socket with other pods.
	srv = startFake(t, sock)
	srv.SetPod("b", podB)
	lookupEventually(t, h.cache, "b", podB)
	_, ok = h.cache.Lookup("a")
	require.False(t, ok)
	require.Equal(t, 1, strings.Count(h.logs.String(), "cri unreachable"))
}

func TestRuntimeErrorCounted(t *testing.T) {
	sock := filepath.Join(sockets.Dir(t), "cri.sock")
	srv := startFake(t, sock)
	h := newCache(t, testConfig(sock))
	h.run(t)
	require.Eventually(t, func() bool { return srv.ListCalls() >= 1 }, waitFor, tick)

	srv.SetError(status.Error(codes.Internal, "boom"))
	err := h.cache.Refresh(context.Background())
	require.Equal(t, codes.Internal, status.Code(err))
	require.Equal(t, 0.0, h.metric(t, "kata_monitor_cri_up"))
	require.GreaterOrEqual(t, h.metric(t, "kata_monitor_cri_requests_total", "result", "error"), 1.0)
}

func TestSlowCRI(t *testing.T) {
	sock := filepath.Join(sockets.Dir(t), "cri.sock")
	srv := startFake(t, sock)
	srv.SetPod("a", podA)
	srv.SetDelay(time.Hour)
	cfg := testConfig(sock)
	cfg.Timeout = 100 * time.Millisecond
	h := newCache(t, cfg)
	h.run(t)

	err := h.cache.Refresh(context.Background())
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), "Timeout bounds each call")

	cfg.Timeout = time.Hour
	h = newCache(t, cfg)
	calls := srv.ListCalls()
	h.run(t)
	require.Eventually(t, func() bool { return srv.ListCalls() > calls }, waitFor, tick, "refresh at start")
	// The start refresh hangs; Lookup must still answer at once (a blocking
	// Lookup would hang this test), and cancelling Run must end the call.
	for range 100 {
		_, ok := h.cache.Lookup("a")
		require.False(t, ok)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := testConfig("relative.sock")
	_, err := cri.New(cfg, slog.New(slog.DiscardHandler), nil)
	require.ErrorContains(t, err, "endpoint")
}
