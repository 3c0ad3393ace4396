package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons of kata_monitor_http_bad_requests_total: a fixed set, so request
// input never becomes a label value.
const (
	reasonMethod         = "method_not_allowed"
	reasonQueryTooLong   = "query_too_long"
	reasonBadQuery       = "bad_query"
	reasonMissingSandbox = "missing_sandbox"
	reasonInvalidSandbox = "invalid_sandbox"
	reasonUnknownSandbox = "unknown_sandbox"
	reasonBadDebugPath   = "bad_debug_path"
)

// httpMetrics are the listener's own metrics.
type httpMetrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	badRequests *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kata_monitor", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"handler", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kata_monitor", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"handler"}),
		badRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kata_monitor", Subsystem: "http", Name: "bad_requests_total",
			Help: "Requests refused before reaching a shim, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.badRequests} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	// Start every reason at 0 so a rate() sees the first one.
	for _, r := range []string{
		reasonMethod, reasonQueryTooLong, reasonBadQuery, reasonMissingSandbox,
		reasonInvalidSandbox, reasonUnknownSandbox, reasonBadDebugPath,
	} {
		m.badRequests.WithLabelValues(r)
	}
	return m, nil
}

// instrument runs h under route name, counting its status code and duration,
// under a write deadline (see Config.WriteTimeout).
func (a *API) instrument(name string, w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	// The ordinary bound first; /metrics and the debug proxy extend it.
	d := a.cfg.WriteTimeout
	if d == 0 {
		d = defaultHandlerDeadline
	}
	setWriteDeadline(sw, d)
	h(sw, r)
	code := sw.code
	if code == 0 {
		code = http.StatusOK // nothing written: net/http answers 200
	}
	a.metrics.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
	a.metrics.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
}

// badRequest answers code with a fixed message and counts reason. The
// message never contains request input.
func (a *API) badRequest(w http.ResponseWriter, code int, reason, msg string) {
	a.metrics.badRequests.WithLabelValues(reason).Inc()
	writeText(w, code, msg+"\n")
}

const defaultHandlerDeadline = 60 * time.Second

// setWriteDeadline moves the connection's write deadline to now+d, overriding
// the server's WriteTimeout for this response only. The read deadline is
// left alone: net/http clears it once the request is read, and setting one
// would make its background read cancel the request context when it fires.
func setWriteDeadline(w http.ResponseWriter, d time.Duration) {
	// ErrNotSupported (e.g. a recorder in tests) only loses the bound.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// statusWriter records the status code for the metrics. It unwraps for
// http.ResponseController and flushes, so proxied streams are not held back.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 && code >= 200 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush implements http.Flusher for handlers that type-assert it.
func (s *statusWriter) Flush() {
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
