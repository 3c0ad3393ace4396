package sandbox

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the watcher's self-metrics, registered on the injected
// registerer so that tests can build many watchers side by side.
type metrics struct {
	sandboxes   prometheus.Gauge
	added       prometheus.Counter
	removed     prometheus.Counter
	resyncs     prometheus.Counter
	watchErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kata_monitor",
		Name:      "sandbox_events_total",
		Help:      "Sandboxes that appeared (added) or disappeared (removed) from the live set.",
	}, []string{"event"})
	m := &metrics{
		sandboxes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kata_monitor",
			Name:      "sandboxes",
			Help:      "Sandboxes currently in the live set.",
		}),
		added:   events.WithLabelValues("added"),
		removed: events.WithLabelValues("removed"),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kata_monitor",
			Name:      "sandbox_resyncs_total",
			Help:      "Full listings of the sandbox roots.",
		}),
		watchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kata_monitor",
			Name:      "sandbox_watch_errors_total",
			Help:      "fsnotify errors (including event overflows) and failed watch registrations.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.sandboxes, events, m.resyncs, m.watchErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sandbox metrics: %w", err)
		}
	}
	return m, nil
}
