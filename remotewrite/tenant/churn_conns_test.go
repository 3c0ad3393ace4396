package tenant

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// TestRouterClosedTenantsCloseTheirConnections: a tenant's queue closed
// (idle, or for a new tenant at max_tenants) closes its connections to
// the receiver. With 60 short-lived namespaces through 4 places, the
// receiver sees at most the open tenants' connections, not one set per
// tenant ever opened (each left open until the transport's 5-minute idle
// timeout, with two goroutines, 8 KiB of buffers and a file descriptor:
// ~38 KiB of heap per namespace in the router's tests before).
func TestRouterClosedTenantsCloseTheirConnections(t *testing.T) {
	var open atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	const maxTenants, lifetime, namespaces = 4, 2, 60
	fx := newRouterFixture(t, srv.URL, "", config.TenantConfig{Label: "cri_namespace", MaxTenants: maxTenants})
	fx.run(t)
	for round := range namespaces + lifetime - 1 {
		alive := aliveNamespaces(round, lifetime, namespaces)
		fx.appendRound(t, nsRound(int64(1000+round), 3, append(alive, "")...))
		require.Eventually(t, func() bool { return fx.pending() == 0 }, 20*time.Second, time.Millisecond, "round %d", round)
	}
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_tenant_samples_dropped_total", map[string]string{"reason": reasonTenantLimit}))
	// Each open tenant's queue sent one request at a time here: about
	// one connection each.
	bound := int64(2 * (maxTenants + 1))
	require.Eventually(t, func() bool { return open.Load() <= bound }, 20*time.Second, 10*time.Millisecond,
		"connections to the receiver stay open after their tenants' queues closed")
}
