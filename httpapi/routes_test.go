package httpapi

import (
	"errors"
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/sources/cri"
)

var acceptHTML = http.Header{"Accept": {"text/html,application/xhtml+xml;q=0.9"}}

func TestSandboxesText(t *testing.T) {
	env := newTestEnv(t, DefaultConfig(), nil)
	w := do(t, env.api.Handler(), http.MethodGet, "/sandboxes", nil)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "text/plain; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Equal(t, idA+"\n"+idB+"\n", w.Body.String())

	empty := newTestEnv(t, DefaultConfig(), func(d *Deps) { d.Sandboxes = newFakeSandboxes() })
	w = do(t, empty.api.Handler(), http.MethodGet, "/sandboxes", nil)
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Empty(t, w.Body.String())
}

func TestSandboxesHTML(t *testing.T) {
	const evil = "<script>alert(1)</script>"
	const oddID = `x"&<y>` // a directory name may hold anything but / and NUL
	env := newTestEnv(t, DefaultConfig(), func(d *Deps) {
		d.Sandboxes = newFakeSandboxes(idA, idB, oddID)
		d.Pods = fakePods{
			idA: {UID: "u1", Name: evil, Namespace: "default"},
			idB: {UID: "u2", Name: "db", Namespace: `ns"onmouseover="x`},
		}
		d.Status = fakeStatus{idB: {Err: "<b>shim down</b>"}, idA: {Series: 759, LastScrape: time.Unix(1700000000, 0)}}
	})
	w := do(t, env.api.Handler(), http.MethodGet, "/sandboxes", acceptHTML)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	body := w.Body.String()

	assert.NotContains(t, body, evil)
	assert.Contains(t, body, `<td class="ns">default</td><td class="pod">`+html.EscapeString(evil)+`</td>`)
	assert.NotContains(t, body, "<b>shim down</b>")
	assert.Contains(t, body, "&lt;b&gt;shim down&lt;/b&gt;")
	assert.NotContains(t, body, `ns"onmouseover`)
	assert.Contains(t, body, "759 series<br>2023-11-14T22:13:20Z")
	assert.Contains(t, body, "never")
	assert.NotContains(t, body, `x"&<y>`)

	// Links carry the id query-escaped exactly once.
	for _, link := range []string{"/agent-url", "/debug/vars", "/debug/pprof/", "/metrics"} {
		assert.Contains(t, body, `href="`+link+`?sandbox=`+idA+`"`)
		assert.Contains(t, body, `href="`+link+`?sandbox=x%22%26%3Cy%3E"`, link)
	}
	assert.NotContains(t, body, "<script", "the page needs no JavaScript")
}

func TestSandboxesHTMLDebugDisabledHidesLinks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EnableDebug = false
	env := newTestEnv(t, cfg, nil)
	body := do(t, env.api.Handler(), http.MethodGet, "/sandboxes", acceptHTML).Body.String()
	assert.Contains(t, body, "/agent-url?sandbox=")
	assert.NotContains(t, body, "/debug/")
}

func TestSandboxesHTMLWithoutOptionalDeps(t *testing.T) {
	env := newTestEnv(t, DefaultConfig(), func(d *Deps) { d.Pods, d.Status = nil, nil })
	w := do(t, env.api.Handler(), http.MethodGet, "/sandboxes", acceptHTML)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), idB)
}

// TestSimpleRoutes: status, Content-Type and body of the small routes
// (health, readiness, index, unknown paths, debug off). Long for its table,
// one row per route and state.
func TestSimpleRoutes(t *testing.T) {
	notReady := func(d *Deps) { d.Ready = func() error { return errors.New("sandbox watcher not synced") } }
	ready := func(d *Deps) { d.Ready = func() error { return nil } }
	noDebug := DefaultConfig()
	noDebug.EnableDebug = false
	tests := []struct {
		name     string
		cfg      Config
		mutate   func(*Deps)
		method   string
		target   string
		header   http.Header
		wantCode int
		wantBody string // substring
		wantShim bool
	}{
		{name: "healthz", target: "/healthz", wantCode: 200, wantBody: "ok"},
		{name: "healthz HEAD", method: http.MethodHead, target: "/healthz", wantCode: 200},
		{name: "readyz nil func", target: "/readyz", wantCode: 200, wantBody: "ready"},
		{name: "readyz ready", mutate: ready, target: "/readyz", wantCode: 200, wantBody: "ready"},
		{name: "readyz not ready", mutate: notReady, target: "/readyz", wantCode: 503, wantBody: "sandbox watcher not synced"},
		{name: "index text", target: "/", wantCode: 200, wantBody: "/sandboxes\n"},
		{name: "index html", target: "/", header: acceptHTML, wantCode: 200, wantBody: `<a href="/metrics">`},
		{name: "unknown path", target: "/nope", wantCode: 404},
		{name: "POST metrics", method: http.MethodPost, target: "/metrics", wantCode: 405},
		{name: "PUT sandboxes", method: http.MethodPut, target: "/sandboxes", wantCode: 405},
		{name: "DELETE debug", method: http.MethodDelete, target: "/debug/vars?sandbox=b2", wantCode: 405},
		{name: "agent-url", target: "/agent-url?sandbox=b2", wantCode: 200, wantBody: "vsock://830455376:1024\n", wantShim: true},
		{name: "agent-url missing", target: "/agent-url", wantCode: 400, wantBody: "missing sandbox parameter"},
		{name: "agent-url unknown", target: "/agent-url?sandbox=zz", wantCode: 404, wantBody: "sandbox not found"},
		{name: "agent-url shim down", mutate: func(d *Deps) { d.Shims.(*fakeShims).err = errShimDown },
			target: "/agent-url?sandbox=b2", wantCode: 502, wantShim: true},
		{name: "debug vars", target: "/debug/vars?sandbox=b2", wantCode: 200, wantBody: "debug /debug/vars socket=/run/vc/sbs/b2/shim-monitor.sock", wantShim: true},
		{name: "debug pprof index", target: "/debug/pprof/?sandbox=b2", wantCode: 200, wantBody: "debug /debug/pprof/ ", wantShim: true},
		{name: "debug cmdline", target: "/debug/pprof/cmdline?sandbox=b2", wantCode: 200, wantBody: "debug /debug/pprof/cmdline ", wantShim: true},
		{name: "debug symbol", target: "/debug/pprof/symbol?sandbox=b2", wantCode: 200, wantBody: "debug /debug/pprof/symbol ", wantShim: true},
		{name: "debug profile", target: "/debug/pprof/profile?seconds=2&sandbox=b2", wantCode: 200, wantBody: "seconds=2", wantShim: true},
		{name: "debug trace", target: "/debug/pprof/trace?seconds=1&sandbox=b2", wantCode: 200, wantBody: "debug /debug/pprof/trace ", wantShim: true},
		{name: "debug named", target: "/debug/pprof/goroutine?debug=2&sandbox=b2", wantCode: 200, wantBody: "debug /debug/pprof/goroutine ", wantShim: true},
		{name: "debug missing sandbox", target: "/debug/pprof/heap", wantCode: 400},
		{name: "debug unknown sandbox", target: "/debug/vars?sandbox=zz", wantCode: 404},
		{name: "debug bad path", target: "/debug/other?sandbox=b2", wantCode: 404},
		{name: "debug bare", target: "/debug?sandbox=b2", wantCode: 404},
		{name: "debug pprof no slash", target: "/debug/pprof?sandbox=b2", wantCode: 404},
		{name: "debug dotdot name", target: "/debug/pprof/..?sandbox=b2", wantCode: 404},
		{name: "debug nested", target: "/debug/pprof/a/b?sandbox=b2", wantCode: 404},
		{name: "debug encoded traversal", target: "/debug/pprof/..%2f..%2fvars?sandbox=b2", wantCode: 404},
		{name: "debug odd char", target: "/debug/pprof/he%20ap?sandbox=b2", wantCode: 404},
		{name: "debug disabled", cfg: noDebug, target: "/debug/vars?sandbox=b2", wantCode: 404},
		{name: "debug disabled pprof", cfg: noDebug, target: "/debug/pprof/?sandbox=b2", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg == (Config{}) {
				cfg = DefaultConfig()
			}
			env := newTestEnv(t, cfg, tt.mutate)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			w := do(t, env.api.Handler(), method, tt.target, tt.header)
			assert.Equal(t, tt.wantCode, w.Code, w.Body.String())
			assert.Contains(t, w.Body.String(), tt.wantBody)
			assert.Equal(t, tt.wantShim, len(env.shims.Requested()) > 0, "shim requested")
			if tt.wantCode == http.StatusMethodNotAllowed {
				assert.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
			}
		})
	}
}

func TestOwnMetrics(t *testing.T) {
	env := newTestEnv(t, DefaultConfig(), nil)
	h := env.api.Handler()
	do(t, h, http.MethodGet, "/healthz", nil)
	do(t, h, http.MethodGet, "/healthz", nil)
	do(t, h, http.MethodGet, "/agent-url?sandbox=../x", nil)
	do(t, h, http.MethodGet, "/agent-url?sandbox=zz", nil)
	do(t, h, http.MethodPost, "/metrics", nil)
	do(t, h, http.MethodGet, "/some/random/path/"+strings.Repeat("x", 50), nil)

	m := env.api.metrics
	assert.Equal(t, 2.0, testutil.ToFloat64(m.requests.WithLabelValues(routeHealthz, "200")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues(routeAgentURL, "400")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues(routeAgentURL, "404")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues(routeMetrics, "405")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues(routeNotFound, "404")))
	require.NoError(t, testutil.GatherAndCompare(env.reg, strings.NewReader(`
# HELP kata_monitor_http_bad_requests_total Requests refused before reaching a shim, by reason.
# TYPE kata_monitor_http_bad_requests_total counter
kata_monitor_http_bad_requests_total{reason="bad_debug_path"} 0
kata_monitor_http_bad_requests_total{reason="bad_query"} 0
kata_monitor_http_bad_requests_total{reason="invalid_sandbox"} 1
kata_monitor_http_bad_requests_total{reason="method_not_allowed"} 1
kata_monitor_http_bad_requests_total{reason="missing_sandbox"} 0
kata_monitor_http_bad_requests_total{reason="query_too_long"} 0
kata_monitor_http_bad_requests_total{reason="unknown_sandbox"} 1
`), "kata_monitor_http_bad_requests_total"))

	// The handler label is a route name, never the raw path.
	n, err := testutil.GatherAndCount(env.reg, "kata_monitor_http_request_duration_seconds")
	require.NoError(t, err)
	assert.Equal(t, 4, n) // healthz, agent_url, metrics, not_found
	body := do(t, h, http.MethodGet, "/metrics", nil).Body.String()
	assert.NotContains(t, body, "random")
	assert.Contains(t, body, `kata_monitor_http_requests_total{code="200",handler="healthz"} 2`)
	// The request serving this body is the one in flight.
	assert.Contains(t, body, "kata_monitor_http_requests_in_flight 1\n")
	assert.Equal(t, 0.0, testutil.ToFloat64(m.inFlight))
}

// A handler that writes nothing is counted as the 200 net/http answers.
func TestOwnMetricsEmptyAnswer(t *testing.T) {
	env := newTestEnv(t, DefaultConfig(), nil)
	h := env.api.instrument("empty", func(http.ResponseWriter, *http.Request) {})
	do(t, h, http.MethodGet, "/", nil)
	assert.Equal(t, 1.0, testutil.ToFloat64(env.api.metrics.requests.WithLabelValues("empty", "200")))
}

func TestNewRejects(t *testing.T) {
	bad := DefaultConfig()
	bad.ReadTimeout = 0
	tests := []struct {
		name    string
		cfg     Config
		mutate  func(*Deps)
		wantErr string
	}{
		{"config", bad, nil, "read_timeout"},
		{"no sandboxes", DefaultConfig(), func(d *Deps) { d.Sandboxes = nil }, "Sandboxes"},
		{"no shims", DefaultConfig(), func(d *Deps) { d.Shims = nil }, "Shims"},
		{"no metrics", DefaultConfig(), func(d *Deps) { d.Metrics = nil }, "Metrics"},
		{"no registerer", DefaultConfig(), func(d *Deps) { d.Registerer = nil }, "Registerer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deps := Deps{Sandboxes: newFakeSandboxes(), Shims: &fakeShims{}, Metrics: &fakeMetrics{},
				Pods: fakePods{"a": cri.Pod{}}, Registerer: prometheusRegistry()}
			if tt.mutate != nil {
				tt.mutate(&deps)
			}
			_, err := New(tt.cfg, deps)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	t.Run("double registration", func(t *testing.T) {
		env := newTestEnv(t, DefaultConfig(), nil)
		_, err := New(DefaultConfig(), Deps{Sandboxes: newFakeSandboxes(), Shims: &fakeShims{}, Metrics: &fakeMetrics{}, Registerer: env.reg})
		require.ErrorContains(t, err, "register http metrics")
	})
}
