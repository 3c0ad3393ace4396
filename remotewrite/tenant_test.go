package remotewrite

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

func TestTenantConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		tenant  TenantConfig
		headers map[string]string
		err     string
	}{
		{name: "defaults", tenant: TenantConfig{Label: "cri_namespace"}},
		{name: "thanos header", tenant: TenantConfig{Label: "cri_namespace", Header: "THANOS-TENANT"}},
		{name: "no label", tenant: TenantConfig{}, err: "tenant.label: must be set"},
		{name: "bad default", tenant: TenantConfig{Label: "ns", Default: "a/b"}, err: `tenant.default: tenant "a/b": character '/' not allowed`},
		{name: "dot default", tenant: TenantConfig{Label: "ns", Default: ".."}, err: `tenant.default: tenant "..": not allowed`},
		{name: "protocol header", tenant: TenantConfig{Label: "ns", Header: "Content-Type"}, err: `tenant.header: "Content-Type" may not be used`},
		{name: "bad header", tenant: TenantConfig{Label: "ns", Header: "X Org"}, err: `tenant.header: "X Org" may not be used`},
		{name: "header twice", tenant: TenantConfig{Label: "ns"}, headers: map[string]string{"x-scope-orgid": "a"}, err: "tenant.header: X-Scope-Orgid is also set in headers"},
		{name: "max tenants", tenant: TenantConfig{Label: "ns", MaxTenants: -1}, err: "tenant.max_tenants: must be > 0"},
		{name: "idle", tenant: TenantConfig{Label: "ns", IdleTimeout: model.Duration(-time.Second)}, err: "tenant.idle_timeout: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := tt.tenant
			cfg := Config{URL: "http://127.0.0.1:9/api/v1/push", Headers: tt.headers, Tenant: &tc}
			cfg.ApplyDefaults()
			err := cfg.Validate()
			if tt.err == "" {
				require.NoError(t, err)
				require.Equal(t, DefaultMaxTenants, cfg.Tenant.MaxTenants)
				require.Equal(t, DefaultTenant, cfg.Tenant.Default)
				return
			}
			require.ErrorContains(t, err, tt.err)
		})
	}
}

// TestTenantDir: every valid tenant maps to one safe path element that
// maps back to it; names tenantDir cannot produce are not tenants.
func TestTenantDir(t *testing.T) {
	for _, tn := range []string{"team-a", "kube_system", "a.b", ".x", "x.", "a!*'()b", "...", strings.Repeat("n", 150)} {
		require.NoError(t, validTenant(tn), tn)
		d := tenantDir(tn)
		require.NotContains(t, d, "/", tn)
		require.NotContains(t, d, ".", tn)
		require.Equal(t, d, filepath.Base(d), tn)
		back, ok := tenantFromDir(d)
		require.True(t, ok, tn)
		require.Equal(t, tn, back)
	}
	require.Equal(t, "team-a", tenantDir("team-a"), "namespaces stay readable")
	require.Equal(t, "a%2eb", tenantDir("a.b"))
	for _, bad := range []string{"", "a%2", "a%2F", "a%zz", "%41", "a%2fb", "..", ".", "lock", strings.Repeat("n", 151)} {
		_, ok := tenantFromDir(bad)
		if bad == "lock" {
			require.True(t, ok, "a plain name is a tenant name; IsQueueDir tells queues apart")
			continue
		}
		require.False(t, ok, bad)
	}
	for _, bad := range []string{"a/b", "../x", "", ".", "..", "a b", "ü", strings.Repeat("n", 151)} {
		require.Error(t, validTenant(bad), bad)
	}
}

func TestRefusalReason(t *testing.T) {
	tests := map[string]string{
		// Mimir (err-mimir-* IDs).
		`failed pushing to ingester: user=a: the sample has been rejected because its timestamp is too old (err-mimir-sample-too-old). The affected sample has timestamp 1970-01-01T00:00:00Z and is from series {__name__="x"}`: reasonTooOld,
		`received a sample whose timestamp is too far in the past (err-mimir-too-far-in-past)`:                                                                                                reasonTooOld,
		`the sample has been rejected because another sample with a more recent timestamp has already been ingested and out-of-order samples are not allowed (err-mimir-sample-out-of-order)`: reasonOutOfOrder,
		`the sample has been rejected because another sample with the same timestamp, but a different value, has already been ingested (err-mimir-sample-duplicate-timestamp)`:                reasonDuplicate,
		`per-user series limit of 10 exceeded (err-mimir-max-series-per-user)`:                                                                                                                reasonLimit,
		`received a sample whose timestamp is too far in the future (err-mimir-too-far-in-future)`:                                                                                            reasonTooNew,
		`received a series with an invalid label: 'a b' (err-mimir-label-invalid)`:                                                                                                            reasonInvalid,
		// Prometheus / Thanos Receive (Prometheus TSDB errors).
		`out of bounds`:                          reasonTooOld,
		`too old sample`:                         reasonTooOld,
		`store: out of order sample`:             reasonOutOfOrder,
		`duplicate sample for timestamp`:         reasonDuplicate,
		`2 errors: conflict; 409: out of bounds`: reasonTooOld,
		// Unknown.
		`answer 400 to request 3`: reasonRefused,
		``:                        reasonRefused,
	}
	for body, want := range tests {
		require.Equal(t, want, refusalReason(body), body)
	}
}

// routerFixture is a Router on a real WAL in a temp dir, sending to rc.
type routerFixture struct {
	r      *Router
	reg    *prometheus.Registry
	walCfg WALConfig
	cfg    Config
}

func newRouterFixture(t *testing.T, url string, dir string, tc TenantConfig) *routerFixture {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := Config{URL: url, Name: "ep", Tenant: &tc}
	cfg.QueueConfig.MinBackoff = model.Duration(time.Millisecond)
	cfg.QueueConfig.MaxBackoff = model.Duration(5 * time.Millisecond)
	f := false
	cfg.MetadataConfig.Send = &f
	walCfg := DefaultWALConfig()
	walCfg.Dir = dir
	walCfg.MaxSize = 64 << 20
	reg := prometheus.NewRegistry()
	r, err := NewRouter(cfg, walCfg, testLogger(t), reg, WithFlushDeadline(50*time.Millisecond))
	require.NoError(t, err)
	return &routerFixture{r: r, reg: reg, walCfg: walCfg, cfg: cfg}
}

func (f *routerFixture) run(t *testing.T) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// metric sums the samples of family name in reg whose labels include
// every pair in want.
func metric(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// nsRound is one round: per namespace, n series with one sample at ts;
// namespace "" leaves the label out.
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
			out = append(out, mkSeries("m", []series.Sample{sample(ts, float64(ts))}, kv...))
		}
	}
	return out
}

func namespaceOf(ts series.Series) string {
	for _, l := range ts.Labels {
		if l.Name == "cri_namespace" {
			return l.Value
		}
	}
	return ""
}

// TestRouterTenantPerNamespace: each request carries one tenant in the
// tenant header and only that tenant's series; series without the label
// go to the default tenant; each tenant has its own WAL directory and its
// own exact accounting.
func TestRouterTenantPerNamespace(t *testing.T) {
	rc := newReceiver(t, nil).start()
	fx := newRouterFixture(t, rc.url(), "", TenantConfig{Label: "cri_namespace", Header: "THANOS-TENANT"})
	fx.run(t)
	const rounds, perNS = 5, 7
	for i := range rounds {
		// Interleaved namespaces, as sandboxes in id order give them.
		round := append(nsRound(int64(1000+i), perNS, "ns-a", "", "ns-b"), nsRound(int64(1000+i), perNS, "ns.c")...)
		require.NoError(t, fx.r.Append(context.Background(), round))
	}
	want := rounds * perNS
	require.Eventually(t, func() bool {
		for _, tn := range []string{"ns-a", "ns-b", "ns.c", DefaultTenant} {
			if metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": tn}) != float64(want) {
				return false
			}
		}
		return true
	}, 20*time.Second, 5*time.Millisecond)

	got := map[string]int{}
	for _, g := range rc.requests() {
		tn := g.header.Get("THANOS-TENANT")
		require.NotEmpty(t, tn)
		for _, ts := range g.req.Timeseries {
			ns := namespaceOf(ts)
			if ns == "" {
				ns = DefaultTenant
			}
			require.Equal(t, tn, ns, "a request mixes tenants")
			got[tn] += len(ts.Samples)
		}
	}
	require.Equal(t, map[string]int{"ns-a": want, "ns-b": want, "ns.c": want, DefaultTenant: want}, got)
	require.Equal(t, []string{DefaultTenant, "ns-a", "ns-b", "ns.c"}, fx.r.Tenants())
	for _, d := range []string{"ns-a", "ns-b", "ns%2ec", DefaultTenant} {
		require.DirExists(t, filepath.Join(fx.walCfg.Dir, "ep", d))
	}
	require.Equal(t, 4.0, metric(t, fx.reg, "kata_monitor_remote_write_tenants", map[string]string{"endpoint": "ep"}))
	for _, tn := range []string{"ns-a", DefaultTenant} {
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
	rc := newReceiver(t, nil)
	var mu sync.Mutex
	throttle := true
	rc.decide = func(_ int, r *http.Request, _ *wreq) (int, map[string]string) {
		switch r.Header.Get("X-Scope-OrgID") {
		case "slow":
			mu.Lock()
			defer mu.Unlock()
			if throttle {
				return http.StatusTooManyRequests, map[string]string{"Retry-After": "3600"}
			}
		case "limited":
			return http.StatusBadRequest, nil // rc.answer names the per-tenant limit
		}
		return http.StatusNoContent, nil
	}
	// Mimir names the limit; a 400 naming no cause for every series
	// would be kept and retried (TestRefusedEverything).
	rc.answer = "per-user series limit of 5 exceeded (err-mimir-max-series-per-user)"
	rc.start()
	fx := newRouterFixture(t, rc.url(), "", TenantConfig{Label: "cri_namespace"})
	// Retry-After is capped at 10*max_backoff; make that long.
	fx.r.cfg.QueueConfig.MaxBackoff = model.Duration(time.Hour)
	fx.run(t)
	const rounds, perNS = 20, 5
	for i := range rounds {
		require.NoError(t, fx.r.Append(context.Background(), nsRound(int64(1000+i), perNS, "slow", "fast", "limited", "")))
	}
	want := float64(rounds * perNS)
	require.Eventually(t, func() bool {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "fast"}) == want &&
			metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": DefaultTenant}) == want &&
			metric(t, fx.reg, "kata_monitor_remote_write_samples_dropped_total", map[string]string{"tenant": "limited", "reason": reasonLimit}) == want
	}, 20*time.Second, 5*time.Millisecond, "the other tenants are held back")
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "slow"}))
	require.Positive(t, metric(t, fx.reg, "kata_monitor_remote_write_samples_failed_total", map[string]string{"tenant": "slow"}))
	require.Positive(t, metric(t, fx.reg, "kata_monitor_remote_write_queue_lag_seconds", map[string]string{"tenant": "slow"}))
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_samples_dropped_total", map[string]string{"tenant": "fast"}))

	// Every fast sample arrived once, in order.
	stored := rc.stored()
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
	rc.decide = func(_ int, r *http.Request, wr *wreq) (int, map[string]string) {
		if r.Header.Get("X-Scope-OrgID") == "small" && (hasIdx(wr, "3") || hasIdx(wr, "4")) {
			return http.StatusBadRequest, nil
		}
		return http.StatusNoContent, nil
	}
	srv := rc.srv
	inner := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(&bodyRewriter{ResponseWriter: w, body: "per-user series limit of 3 exceeded (err-mimir-max-series-per-user)"}, r)
	})
	rc.start()
	fx := newRouterFixture(t, rc.url(), "", TenantConfig{Label: "cri_namespace"})
	fx.run(t)
	require.NoError(t, fx.r.Append(context.Background(), nsRound(1000, 5, "small", "big")))
	require.Eventually(t, func() bool {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "small"}) == 3 &&
			metric(t, fx.reg, "kata_monitor_remote_write_samples_dropped_total", map[string]string{"tenant": "small", "reason": reasonLimit}) == 2 &&
			metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "big"}) == 5
	}, 20*time.Second, 5*time.Millisecond)
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_samples_dropped_total", map[string]string{"tenant": "small", "reason": reasonRefused}))
}

// bodyRewriter replaces the body of error answers.
type bodyRewriter struct {
	http.ResponseWriter
	body string
	code int
}

func (b *bodyRewriter) WriteHeader(code int) { b.code = code; b.ResponseWriter.WriteHeader(code) }
func (b *bodyRewriter) Write(p []byte) (int, error) {
	if b.code/100 != 2 {
		_, err := b.ResponseWriter.Write([]byte(b.body))
		return len(p), err
	}
	return b.ResponseWriter.Write(p)
}

// TestRouterTenantBound: past max_tenants, and for label values that are
// no valid tenant, series are dropped and counted, never sent to another
// tenant; closing an idle tenant frees its place and its directory.
func TestRouterTenantBound(t *testing.T) {
	rc := newReceiver(t, nil).start()
	// The idle timeout leaves room for the checks below before a goes idle
	// (200 ms closed it before them on a loaded machine).
	fx := newRouterFixture(t, rc.url(), "", TenantConfig{Label: "cri_namespace", MaxTenants: 2, IdleTimeout: model.Duration(2 * time.Second)})
	fx.run(t)
	require.NoError(t, fx.r.Append(context.Background(), nsRound(1000, 3, "", "a", "b", "../etc")))
	dropped := func(reason string) float64 {
		return metric(t, fx.reg, "kata_monitor_remote_write_tenant_samples_dropped_total", map[string]string{"reason": reason})
	}
	require.Equal(t, 3.0, dropped(reasonTenantLimit), "b is the third tenant")
	require.Equal(t, 3.0, dropped(reasonTenantInvalid))
	require.Equal(t, []string{"a", DefaultTenant}, fx.r.Tenants())
	entries, err := os.ReadDir(filepath.Join(fx.walCfg.Dir, "ep"))
	require.NoError(t, err)
	require.Len(t, entries, 2)
	require.NoDirExists(t, filepath.Join(fx.walCfg.Dir, "etc"))

	// a goes idle once its queue is empty; the default tenant stays.
	require.Eventually(t, func() bool {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "a"}) == 3
	}, 20*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		return len(fx.r.Tenants()) == 1
	}, 20*time.Second, 10*time.Millisecond)
	require.NoDirExists(t, filepath.Join(fx.walCfg.Dir, "ep", "a"))
	require.DirExists(t, filepath.Join(fx.walCfg.Dir, "ep", DefaultTenant))
	require.NoError(t, fx.r.Append(context.Background(), nsRound(1001, 3, "b")))
	require.Equal(t, 3.0, dropped(reasonTenantLimit), "b has a place now")
	require.Equal(t, []string{"b", DefaultTenant}, fx.r.Tenants())
}

// TestRouterBacklogSurvivesRestart: a tenant's backlog is reopened and
// sent after a restart even if that tenant sends nothing new.
func TestRouterBacklogSurvivesRestart(t *testing.T) {
	var mu sync.Mutex
	up := false
	rc := newReceiver(t, func(int, *http.Request) (int, map[string]string) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusNoContent, nil
	}).start()
	dir := t.TempDir()
	fx := newRouterFixture(t, rc.url(), dir, TenantConfig{Label: "cri_namespace"})
	stop := fx.run(t)
	for i := range 3 {
		require.NoError(t, fx.r.Append(context.Background(), nsRound(int64(1000+i), 4, "gone")))
	}
	require.NoError(t, stop())

	mu.Lock()
	up = true
	mu.Unlock()
	fx2 := newRouterFixture(t, rc.url(), dir, TenantConfig{Label: "cri_namespace"})
	require.Equal(t, []string{"gone"}, fx2.r.Tenants())
	fx2.run(t)
	require.Eventually(t, func() bool {
		return metric(t, fx2.reg, "kata_monitor_remote_write_samples_sent_total", map[string]string{"tenant": "gone"}) == 12
	}, 20*time.Second, 5*time.Millisecond)
	for _, g := range rc.requests() {
		if g.code/100 == 2 {
			require.Equal(t, "gone", g.header.Get("X-Scope-OrgID"))
		}
	}
}

// TestRouterBesidePlainQueue: a tenant-routed endpoint and a plain one
// (registered with tenant="", as cmd does) share one registry.
func TestRouterBesidePlainQueue(t *testing.T) {
	rc := newReceiver(t, nil).start()
	fx := newRouterFixture(t, rc.url(), "", TenantConfig{Label: "cri_namespace"})
	require.NoError(t, fx.r.Append(context.Background(), nsRound(1000, 1, "a")))
	q, err := New(Config{URL: rc.url(), Name: "plain"}, fx.walCfg, nil,
		prometheus.WrapRegistererWith(prometheus.Labels{"tenant": ""}, fx.reg))
	require.NoError(t, err)
	require.NoError(t, q.Append(context.Background(), nsRound(1000, 1, "a")))
	_, err = fx.reg.Gather()
	require.NoError(t, err)
	require.Equal(t, 1.0, metric(t, fx.reg, "kata_monitor_remote_write_samples_appended_total", map[string]string{"endpoint": "plain"}))
	require.NoError(t, q.Close())
	require.NoError(t, fx.r.Close())
	_, err = New(Config{URL: rc.url(), Name: "ep", Tenant: &TenantConfig{Label: "x"}}, fx.walCfg, nil, nil)
	require.ErrorContains(t, err, "NewRouter")
}

// TestCoalescedAck: a tenant queue persists its acknowledged position at
// most once per ackEvery; a deferred one is persisted by the timer, and by
// Close at the latest, so nothing acknowledged is left unpersisted.
func TestCoalescedAck(t *testing.T) {
	mq := newMemQueue()
	c := &coalescedAck{blockQueue: mq, now: time.Now}
	require.NoError(t, c.Ack(1))
	require.Equal(t, uint64(1), mq.ackedSeq(), "the first is persisted at once")
	require.NoError(t, c.Ack(2))
	require.NoError(t, c.Ack(3))
	require.Equal(t, uint64(1), mq.ackedSeq(), "deferred within ackEvery")
	require.Eventually(t, func() bool { return mq.ackedSeq() == 3 }, 10*time.Second, 10*time.Millisecond, "the timer persists it")
	require.NoError(t, c.Ack(4))
	require.Equal(t, uint64(3), mq.ackedSeq())
	require.NoError(t, c.Close())
	require.Equal(t, uint64(4), mq.ackedSeq(), "Close persists the deferred position")
}
