package tenant

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// TestRouterTenantAnsweredTooLarge: a receiver (or a proxy in front of
// it) answering one tenant 413 to every request, another 431 (request
// header fields too large) to every request: the 413 tenant's requests
// shrink to the floor of 100 samples and are then retried, the 431
// tenant's retried; neither drops a sample nor holds back the other
// tenants, whose requests keep their full size. Each tenant's books:
// appended = sent + dropped + pending.
func TestRouterTenantAnsweredTooLarge(t *testing.T) {
	rc := newReceiver(t, func(_ int, r *http.Request) (int, map[string]string) {
		switch r.Header.Get("X-Scope-OrgID") {
		case "big":
			return http.StatusRequestEntityTooLarge, nil
		case "hdr":
			return http.StatusRequestHeaderFieldsTooLarge, nil
		}
		return http.StatusNoContent, nil
	}).Start()
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace"})
	fx.run(t)
	const rounds, perNS = 5, 300
	for i := range rounds {
		fx.appendRound(t, nsRound(int64(1000+i), perNS, "big", "hdr", "ok", ""))
	}
	m := func(name, tenant string, kv ...string) float64 {
		want := map[string]string{"tenant": tenant}
		for i := 0; i < len(kv); i += 2 {
			want[kv[i]] = kv[i+1]
		}
		return metric(t, fx.reg, name, want)
	}
	const want = float64(rounds * perNS)
	require.Eventually(t, func() bool {
		return m("kata_monitor_remote_write_samples_sent_total", "ok") == want &&
			m("kata_monitor_remote_write_samples_sent_total", config.DefaultTenant) == want &&
			m("kata_monitor_remote_write_max_samples_per_send", "big") == 100 &&
			m("kata_monitor_remote_write_requests_total", "hdr", "code", "431") >= 3 &&
			m("kata_monitor_remote_write_requests_total", "big", "code", "413") >= 8
	}, 20*time.Second, 5*time.Millisecond)
	for _, tn := range []string{"big", "hdr"} {
		require.Zero(t, m("kata_monitor_remote_write_samples_sent_total", tn), tn)
		require.Zero(t, m("kata_monitor_remote_write_samples_dropped_total", tn), tn)
		require.Equal(t, want, m("kata_monitor_wal_samples_appended_total", tn), tn)
		require.Equal(t, want, m("kata_monitor_wal_pending_samples", tn), tn)
	}
	def := float64(config.DefaultConfig().QueueConfig.MaxSamplesPerSend)
	require.Equal(t, def, m("kata_monitor_remote_write_max_samples_per_send", "ok"))
	require.Equal(t, def, m("kata_monitor_remote_write_max_samples_per_send", "hdr"))
}
