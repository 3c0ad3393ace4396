package tenant

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// routerFixture is a Router on a real WAL in a temp dir, sending to rc.
type routerFixture struct {
	r      *Router
	reg    *prometheus.Registry
	walCfg config.WALConfig
	cfg    config.Config
}

func newRouterFixture(t *testing.T, url string, dir string, tc config.TenantConfig) *routerFixture {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := config.Config{URL: url, Name: "ep", Tenant: &tc}
	cfg.QueueConfig.MinBackoff = model.Duration(time.Millisecond)
	cfg.QueueConfig.MaxBackoff = model.Duration(5 * time.Millisecond)
	f := false
	cfg.MetadataConfig.Send = &f
	walCfg := config.DefaultWALConfig()
	walCfg.Dir = dir
	walCfg.MaxSize = 64 << 20
	reg := prometheus.NewRegistry()
	r, err := New(cfg, walCfg, rwtest.Logger(t), reg, remotewrite.WithFlushDeadline(50*time.Millisecond))
	require.NoError(t, err)
	return &routerFixture{r: r, reg: reg, walCfg: walCfg, cfg: cfg}
}

// appendRound hands ss to the router as one round: Append, then Commit.
func (f *routerFixture) appendRound(t *testing.T, ss []series.Series) {
	t.Helper()
	require.NoError(t, f.r.Append(context.Background(), ss))
	require.NoError(t, f.r.Commit(context.Background()))
}

// run runs the router in the background until the returned stop (or the
// test's end).
func (f *routerFixture) run(t *testing.T) (stop func() error) { return rwtest.Run(t, f.r.Run) }

// nsRound is one round: per namespace, n series with one sample at ts;
// namespace "" leaves the label out. Every other series is given as a
// template with the namespace as its slot, as the forwarder hands them.
func nsRound(ts int64, n int, namespaces ...string) []series.Series {
	var out []series.Series
	for _, ns := range namespaces {
		for i := range n {
			kv := []string{"idx", fmt.Sprint(i)}
			if ns != "" {
				kv = append(kv, "cri_namespace", ns)
			} else {
				kv = append(kv, "own", "1")
			}
			s := mkSeries("m", []series.Sample{{Timestamp: ts, Value: float64(ts)}}, kv...)
			if i%2 == 1 {
				slots := make([]int, len(s.Labels))
				for j, l := range s.Labels {
					if slots[j] = -1; l.Name == "cri_namespace" {
						slots[j] = 0
					}
				}
				s = series.Series{Template: series.NewTemplate(s.Labels, slots), Values: series.NewValues(ns), Samples: s.Samples}
			}
			out = append(out, s)
		}
	}
	return out
}

func namespaceOf(ts series.Series) string { return ts.Get("cri_namespace") }

// TestRouterTenantPerNamespace: each request carries one tenant in the
// tenant header and only that tenant's series; series without the label
// go to the default tenant; the tenants share one WAL directory and each
// has its own exact accounting.
func TestRouterTenantPerNamespace(t *testing.T) {
	rc := newReceiver(t, nil).Start()
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace", Header: "THANOS-TENANT"})
	fx.run(t)
	const rounds, perNS = 5, 7
	for i := range rounds {
		// Interleaved namespaces, as sandboxes in id order give them.
		round := append(nsRound(int64(1000+i), perNS, "ns-a", "", "ns-b"), nsRound(int64(1000+i), perNS, "ns.c")...)
		fx.appendRound(t, round)
	}
	want := rounds * perNS
	require.Eventually(t, func() bool {
		for _, tn := range []string{"ns-a", "ns-b", "ns.c", config.DefaultTenant} {
			if metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": tn}) != float64(want) {
				return false
			}
		}
		return true
	}, 20*time.Second, 5*time.Millisecond)

	got := map[string]int{}
	for _, g := range rc.Requests() {
		tn := g.Header.Get("THANOS-TENANT")
		require.NotEmpty(t, tn)
		for _, ts := range g.Req.Timeseries {
			ns := namespaceOf(ts)
			if ns == "" {
				ns = config.DefaultTenant
			}
			require.Equal(t, tn, ns, "a request mixes tenants")
			got[tn] += len(ts.Samples)
		}
	}
	require.Equal(t, map[string]int{"ns-a": want, "ns-b": want, "ns.c": want, config.DefaultTenant: want}, got)
	require.Equal(t, []string{config.DefaultTenant, "ns-a", "ns-b", "ns.c"}, fx.r.Tenants())
	entries, err := os.ReadDir(filepath.Join(fx.walCfg.Dir, "ep"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "one WAL shared by the tenants")
	require.Equal(t, remotewrite.TenantWALDir, entries[0].Name())
	require.Equal(t, 4.0, metric(t, fx.reg, "kata_monitor_remote_write_tenants", map[string]string{"endpoint": "ep"}))
	for _, tn := range []string{"ns-a", config.DefaultTenant} {
		l := map[string]string{"endpoint": "ep", "tenant": tn}
		require.Equal(t, float64(want), metric(t, fx.reg, "kata_monitor_remote_write_samples_appended_total", l))
		require.Equal(t, float64(want), metric(t, fx.reg, "kata_monitor_wal_samples_appended_total", l))
	}
}

// TestRouterNoHeadOfLineBlocking: a tenant answered 429 with a long
// Retry-After and a tenant whose every request is refused for a
// per-tenant limit (400) never hold back the other tenants: theirs all
// arrive, in order, while the throttled one waits; the refused one's
// samples are dropped and counted under the reason the receiver gave.
func TestRouterNoHeadOfLineBlocking(t *testing.T) {
	rc := newReceiver(t, func(_ int, r *http.Request) (int, map[string]string) {
		switch r.Header.Get("X-Scope-OrgID") {
		case "slow":
			return http.StatusTooManyRequests, map[string]string{"Retry-After": "3600"}
		case "limited":
			return http.StatusBadRequest, nil // rc.Answer names the per-tenant limit
		}
		return http.StatusNoContent, nil
	})
	// Mimir names the limit; a 400 naming no cause for every series
	// would be kept and retried (TestRefusedEverything).
	rc.Answer = "per-user series limit of 5 exceeded (err-mimir-max-series-per-user)"
	rc.Start()
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace"})
	// Retry-After is capped at 10*max_backoff; make that long.
	fx.r.cfg.QueueConfig.MaxBackoff = model.Duration(time.Hour)
	fx.run(t)
	const rounds, perNS = 20, 5
	for i := range rounds {
		fx.appendRound(t, nsRound(int64(1000+i), perNS, "slow", "fast", "limited", ""))
	}
	want := float64(rounds * perNS)
	require.Eventually(t, func() bool {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "fast"}) == want &&
			metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": config.DefaultTenant}) == want &&
			metric(t, fx.reg, "kata_monitor_remote_write_samples_dropped_total", map[string]string{"tenant": "limited", "reason": "limit"}) == want
	}, 20*time.Second, 5*time.Millisecond, "the other tenants are held back")
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "slow"}))
	require.Positive(t, metric(t, fx.reg, "kata_monitor_remote_write_samples_failed_total", map[string]string{"tenant": "slow"}))
	require.Positive(t, metric(t, fx.reg, "kata_monitor_remote_write_queue_lag_seconds", map[string]string{"tenant": "slow"}))
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_samples_dropped_total", map[string]string{"tenant": "fast"}))

	// Every fast sample arrived once, in order.
	stored := rc.Stored()
	n := 0
	for k, ss := range stored {
		if !strings.Contains(k, "cri_namespace=fast") {
			continue
		}
		require.Len(t, ss, rounds, k)
		for i, s := range ss {
			require.Equal(t, int64(1000+i), s.Timestamp, k)
		}
		n++
	}
	require.Equal(t, perNS, n)
}

// TestRouterRefusalReasonPerTenant: a per-tenant limit answered like
// Mimir's (400 err-mimir-max-series-per-user for some series) drops just
// the refused series of that tenant, under reason "limit".
func TestRouterRefusalReasonPerTenant(t *testing.T) {
	rc := newReceiver(t, nil)
	rc.Decide = func(_ int, r *http.Request, wr *rwtest.Request) (int, map[string]string) {
		if r.Header.Get("X-Scope-OrgID") == "small" && (hasIdx(wr.Timeseries, "3") || hasIdx(wr.Timeseries, "4")) {
			return http.StatusBadRequest, nil
		}
		return http.StatusNoContent, nil
	}
	rc.Answer = "per-user series limit of 3 exceeded (err-mimir-max-series-per-user)"
	rc.Start()
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace"})
	fx.run(t)
	fx.appendRound(t, nsRound(1000, 5, "small", "big"))
	require.Eventually(t, func() bool {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "small"}) == 3 &&
			metric(t, fx.reg, "kata_monitor_remote_write_samples_dropped_total", map[string]string{"tenant": "small", "reason": "limit"}) == 2 &&
			metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "big"}) == 5
	}, 20*time.Second, 5*time.Millisecond)
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_samples_dropped_total", map[string]string{"tenant": "small", "reason": "refused"}))
}

// TestRouterTenantBound: past max_tenants, and for label values that are
// no valid tenant, series are dropped and counted, never sent to another
// tenant; closing an idle tenant frees its place. No directory is made
// for a tenant (one WAL is shared), so none for "../etc" either.
func TestRouterTenantBound(t *testing.T) {
	rc := newReceiver(t, nil).Start()
	// The idle timeout leaves room for the checks below before a and b go
	// idle (200 ms closed them before the checks on a loaded machine).
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace", MaxTenants: 2, IdleTimeout: model.Duration(2 * time.Second)})
	fx.run(t)
	// The default tenant ("") comes after the limit is reached: it is not
	// counted against it, so series without the label (own metrics) are
	// never dropped for it.
	fx.appendRound(t, nsRound(1000, 3, "a", "b", "c", "", "../etc"))
	dropped := func(reason string) float64 {
		return metric(t, fx.reg, "kata_monitor_remote_write_tenant_samples_dropped_total", map[string]string{"reason": reason})
	}
	require.Equal(t, 3.0, dropped(reasonTenantLimit), "c is the third named tenant")
	require.Equal(t, 3.0, dropped(reasonTenantInvalid))
	require.Equal(t, []string{"a", "b", config.DefaultTenant}, fx.r.Tenants())
	entries, err := os.ReadDir(filepath.Join(fx.walCfg.Dir, "ep"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.NoDirExists(t, filepath.Join(fx.walCfg.Dir, "etc"))

	// a and b go idle once their queues are empty; the default tenant stays.
	require.Eventually(t, func() bool {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "a"}) == 3 &&
			metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "b"}) == 3
	}, 20*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		return len(fx.r.Tenants()) == 1
	}, 20*time.Second, 10*time.Millisecond)
	fx.appendRound(t, nsRound(1001, 3, "c"))
	require.Equal(t, 3.0, dropped(reasonTenantLimit), "c has a place now")
	require.Equal(t, []string{"c", config.DefaultTenant}, fx.r.Tenants())
}

// TestRouterBacklogSurvivesRestart: a tenant's backlog is reopened and
// sent after a restart even if that tenant sends nothing new.
func TestRouterBacklogSurvivesRestart(t *testing.T) {
	rc, up := rwtest.NewSwitchReceiver(t)
	dir := t.TempDir()
	fx := newRouterFixture(t, rc.URL(), dir, config.TenantConfig{Label: "cri_namespace"})
	stop := fx.run(t)
	for i := range 3 {
		fx.appendRound(t, nsRound(int64(1000+i), 4, "gone"))
	}
	require.NoError(t, stop())

	up.Store(true)
	fx2 := newRouterFixture(t, rc.URL(), dir, config.TenantConfig{Label: "cri_namespace"})
	require.Equal(t, []string{"gone"}, fx2.r.Tenants())
	fx2.run(t)
	require.Eventually(t, func() bool {
		return metric(t, fx2.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "gone"}) == 12
	}, 20*time.Second, 5*time.Millisecond)
	for _, g := range rc.Requests() {
		if g.Code/100 == 2 {
			require.Equal(t, "gone", g.Header.Get("X-Scope-OrgID"))
		}
	}
}

// TestRouterBesidePlainQueue: a tenant-routed endpoint and a plain one
// (registered with tenant="", as cmd does) share one registry.
func TestRouterBesidePlainQueue(t *testing.T) {
	rc := newReceiver(t, nil).Start()
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace"})
	fx.appendRound(t, nsRound(1000, 1, "a"))
	q, err := remotewrite.New(config.Config{URL: rc.URL(), Name: "plain"}, fx.walCfg, nil,
		prometheus.WrapRegistererWith(prometheus.Labels{"tenant": ""}, fx.reg))
	require.NoError(t, err)
	require.NoError(t, q.Append(context.Background(), nsRound(1000, 1, "a")))
	_, err = fx.reg.Gather()
	require.NoError(t, err)
	require.Equal(t, 1.0, metric(t, fx.reg, "kata_monitor_remote_write_samples_appended_total", map[string]string{"endpoint": "plain"}))
	require.NoError(t, q.Close())
	require.NoError(t, fx.r.Close())
	_, err = remotewrite.New(config.Config{URL: rc.URL(), Name: "ep", Tenant: &config.TenantConfig{Label: "x"}}, fx.walCfg, nil, nil)
	require.ErrorContains(t, err, "tenant.New")
}
