package shim

import (
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakeshim"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

// startFake starts a fake shim on a fresh socket.
func startFake(t testing.TB) *fakeshim.Shim {
	t.Helper()
	s, err := fakeshim.Start(filepath.Join(sockets.Dir(t), "shim-monitor.sock"), fakeshim.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
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
