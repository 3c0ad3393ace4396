package shim

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakeshim"
)

// shortDir returns a temp dir short enough for unix socket paths.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "km")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// startFake starts a fake shim on a fresh socket.
func startFake(t testing.TB) *fakeshim.Shim {
	t.Helper()
	s, err := fakeshim.Start(filepath.Join(shortDir(t), "shim-monitor.sock"), fakeshim.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// serveUnix serves h on a fresh unix socket with an optional ConnState hook
// and returns the socket path.
func serveUnix(t testing.TB, h http.Handler, connState func(net.Conn, http.ConnState)) string {
	t.Helper()
	sock := filepath.Join(shortDir(t), "s.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ConnState: connState, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return sock
}

// testPool returns a pool on a private registry.
func testPool(t testing.TB, cfg Config) *Pool {
	t.Helper()
	p, err := NewPool(cfg, prometheus.NewRegistry())
	require.NoError(t, err)
	return p
}

// count returns kata_monitor_shim_requests_total{endpoint, result}.
func (p *Pool) count(endpoint, result string) float64 {
	return testutil.ToFloat64(p.m.requests.WithLabelValues(endpoint, result))
}
