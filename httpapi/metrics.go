package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics are the listener's own metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
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
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kata_monitor", Subsystem: "http", Name: "requests_in_flight",
			Help: "HTTP requests being answered.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// instrument wraps h, the handler of route name, in the listener's metrics
// (promhttp's middleware: requests_total{handler,code},
// request_duration_seconds{handler}, requests_in_flight) and the ordinary
// write deadline (see Config.WriteTimeout). A handler that writes nothing
// counts as 200, as net/http answers.
func (a *API) instrument(name string, h http.HandlerFunc) http.Handler {
	route := prometheus.Labels{"handler": name}
	d := a.cfg.WriteTimeout
	if d == 0 {
		d = defaultHandlerDeadline
	}
	deadline := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The ordinary bound first; /metrics and the debug proxy extend it.
		setWriteDeadline(w, d)
		h(w, r)
	})
	return promhttp.InstrumentHandlerInFlight(a.metrics.inFlight,
		promhttp.InstrumentHandlerCounter(a.metrics.requests.MustCurryWith(route),
			promhttp.InstrumentHandlerDuration(a.metrics.duration.MustCurryWith(route), deadline)))
}

const defaultHandlerDeadline = 60 * time.Second
