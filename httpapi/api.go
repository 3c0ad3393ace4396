// Package httpapi serves kata-monitor's HTTP endpoints, compatible with
// upstream kata-monitor: the server (exporter-toolkit's TLS and basic
// auth, timeouts, graceful shutdown), routing by exact path with method and
// query limits, the kata_monitor_http_* metrics, /metrics (merged or one
// sandbox's, gzip cached per snapshot), /metrics/self, /healthz and
// /readyz. The pages, /sandboxes, /agent-url and the /debug/* proxy are
// httpapi/sandboxes; request parsing and refusals are httpapi/request.
//
// Every sandbox id taken from a request is validated and then looked up in
// the live set; only the Sandbox found there (its Socket) reaches a shim, so
// no path is ever built from request input.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/kata-containers/kata-monitor/httpapi/request"
	"github.com/kata-containers/kata-monitor/httpapi/sandboxes"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
)

// The sources the API reads, defined by httpapi/sandboxes.
type (
	Sandboxes    = sandboxes.Sandboxes
	Pods         = sandboxes.Pods
	Shim         = sandboxes.Shim
	Shims        = sandboxes.Shims
	Status       = sandboxes.Status
	StatusSource = sandboxes.StatusSource
)

// MetricsSource is the forwarder's read side (forwarder.Forwarder.View).
type MetricsSource interface {
	// View acquires the current snapshot of the merged exposition, possibly
	// waiting for one scrape round (it must honour ctx), and calls fn with
	// it, keeping it alive until fn returns. It returns the acquisition
	// error without calling fn, else fn's error. round identifies the
	// snapshot: equal values mean identical content, a newer snapshot has
	// a larger one. write renders the text exposition (0.0.4) of all shims,
	// without kata-monitor's own families, keeping only families whose name
	// starts with one of prefixes (all when empty); it is valid only while
	// fn runs and may be called from several goroutines at once. Names
	// outside the legacy charset are written as scheme says (NoEscaping:
	// quoted UTF-8); round then also tells schemes apart.
	View(ctx context.Context, scheme model.EscapingScheme, fn func(round uint64, write func(w io.Writer, prefixes []string) error) error) error
}

// Deps are the collaborators of the API. Sandboxes, Shims, Metrics and
// Registerer are required; the others may be nil.
type Deps struct {
	Sandboxes Sandboxes
	Pods      Pods // nil: no pod columns
	Shims     Shims
	Metrics   MetricsSource
	Status    StatusSource // nil: no scrape status column
	// Gatherer is kata-monitor's own registry, appended to /metrics when no
	// filter_family is given. nil: none.
	Gatherer prometheus.Gatherer
	// Ready reports readiness for /readyz; nil means always ready.
	Ready func() error
	// Logger receives request failures; nil discards them.
	Logger *slog.Logger
	// Registerer receives the kata_monitor_http_* metrics.
	Registerer prometheus.Registerer
}

// API holds the handlers and the server settings. It is safe for concurrent
// use once built; it starts nothing until Run or Serve.
type API struct {
	cfg     Config
	deps    Deps
	logger  *slog.Logger
	metrics *httpMetrics
	refuser *request.Refuser
	pools   *pools
	gzip    *gzipCache
	pages   *sandboxes.Handlers
	routes  *routes
	handler http.Handler
}

// New validates cfg and deps and builds the API. It starts nothing and
// registers the kata_monitor_http_* metrics on deps.Registerer.
func New(cfg Config, deps Deps) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("httpapi config: %w", err)
	}
	switch {
	case deps.Sandboxes == nil:
		return nil, errors.New("httpapi: Sandboxes is required")
	case deps.Shims == nil:
		return nil, errors.New("httpapi: Shims is required")
	case deps.Metrics == nil:
		return nil, errors.New("httpapi: Metrics is required")
	case deps.Registerer == nil:
		return nil, errors.New("httpapi: Registerer is required")
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newHTTPMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	refuser, err := request.NewRefuser(deps.Registerer)
	if err != nil {
		return nil, err
	}
	pages, err := sandboxes.New(cfg.EnableDebug, sandboxes.Deps{Sandboxes: deps.Sandboxes, Pods: deps.Pods,
		Shims: deps.Shims, Status: deps.Status, Refuser: refuser, Logger: logger})
	if err != nil {
		return nil, err
	}
	p := newPools()
	a := &API{cfg: cfg, deps: deps, logger: logger, metrics: m, refuser: refuser, pools: p, pages: pages,
		gzip: &gzipCache{workers: gzipWorkers(), flate: &p.flate}}
	if a.routes, err = a.newRoutes(); err != nil {
		return nil, err
	}
	a.handler = http.HandlerFunc(a.route)
	return a, nil
}

// Handler returns the root handler (routing, limits, instrumentation),
// without TLS or auth: Run and Serve add those from the web config file.
func (a *API) Handler() http.Handler { return a.handler }

// Route names: the fixed "handler" label values of the own metrics.
const (
	routeIndex     = "index"
	routeMetrics   = "metrics"
	routeSelf      = "metrics_self"
	routeSandboxes = "sandboxes"
	routeAgentURL  = "agent_url"
	routeDebug     = "debug"
	routeHealthz   = "healthz"
	routeReadyz    = "readyz"
	routeNotFound  = "not_found"
)

// routes holds every route's handler, instrumented once at New. Routing is
// by exact path (no ServeMux: its 404/405 and path cleaning redirects would
// bypass the instrumentation and the limits).
type routes struct {
	byPath   map[string]http.Handler
	debug    http.Handler // any /debug/ path, when enabled
	notFound http.Handler
}

func (a *API) newRoutes() (*routes, error) {
	gz, err := newGzipWrap()
	if err != nil {
		return nil, fmt.Errorf("gzip handler: %w", err)
	}
	rt := &routes{byPath: make(map[string]http.Handler)}
	for path, r := range map[string]struct {
		name string
		h    http.HandlerFunc
		gzip bool // the answer can be large: negotiate gzip
	}{
		"/":             {routeIndex, a.pages.Index, false},
		"/metrics":      {routeMetrics, a.serveMetrics, true},
		"/metrics/self": {routeSelf, a.serveSelf, true},
		"/sandboxes":    {routeSandboxes, a.pages.List, true},
		"/agent-url":    {routeAgentURL, a.pages.AgentURL, false},
		"/healthz":      {routeHealthz, serveHealthz, false},
		"/readyz":       {routeReadyz, a.serveReadyz, false},
	} {
		h := r.h
		if r.gzip {
			h = gz(h)
		}
		rt.byPath[path] = a.instrument(r.name, a.limited(h))
	}
	rt.notFound = a.instrument(routeNotFound, a.limited(http.NotFound))
	rt.debug = rt.notFound
	if a.cfg.EnableDebug {
		rt.debug = a.instrument(routeDebug, a.limited(a.pages.Debug))
	}
	return rt, nil
}

// route picks the handler by exact path.
func (a *API) route(w http.ResponseWriter, r *http.Request) {
	h, ok := a.routes.byPath[r.URL.Path]
	switch {
	case ok:
	case sandboxes.IsDebugPath(r.URL.Path):
		h = a.routes.debug
	default:
		h = a.routes.notFound
	}
	h.ServeHTTP(w, r)
}

// limited refuses, before h runs, methods other than GET and HEAD and query
// strings over Config.MaxQueryBytes.
func (a *API) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			a.refuser.Refuse(w, http.StatusMethodNotAllowed, request.ReasonMethod, "method not allowed")
			return
		}
		if len(r.URL.RawQuery) > a.cfg.MaxQueryBytes {
			a.refuser.Refuse(w, http.StatusRequestURITooLong, request.ReasonQueryTooLong, "query string too long")
			return
		}
		h(w, r)
	}
}

func serveHealthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok\n")
}

func (a *API) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	if a.deps.Ready != nil {
		if err := a.deps.Ready(); err != nil {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
			return
		}
	}
	writeText(w, http.StatusOK, "ready\n")
}

// The helpers below keep the /metrics handlers' spelling (exposition.go)
// and forward to httpapi/request.

func writeText(w http.ResponseWriter, code int, body string) { request.WriteText(w, code, body) }

func setWriteDeadline(w http.ResponseWriter, d time.Duration) { request.SetWriteDeadline(w, d) }

func familyPrefixes(q url.Values) []string { return request.FamilyPrefixes(q) }

func (a *API) parseQuery(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	return a.refuser.Query(w, r)
}

func (a *API) sandboxFromQuery(w http.ResponseWriter, q url.Values) (sandbox.Sandbox, bool) {
	return a.refuser.Sandbox(w, q, a.deps.Sandboxes)
}
