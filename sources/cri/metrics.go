package cri

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cache's self-metrics, registered on the injected
// registerer so that tests can build many caches side by side.
type metrics struct {
	success prometheus.Counter
	failure prometheus.Counter
	up      prometheus.Gauge
	pods    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kata_monitor",
		Name:      "cri_requests_total",
		Help:      "ListPodSandbox calls to the CRI runtime, by result.",
	}, []string{"result"})
	m := &metrics{
		success: requests.WithLabelValues("success"),
		failure: requests.WithLabelValues("error"),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kata_monitor",
			Name:      "cri_up",
			Help:      "1 if the last ListPodSandbox call succeeded, else 0.",
		}),
		pods: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kata_monitor",
			Name:      "cri_pods",
			Help:      "Pod sandboxes in the metadata cache.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{requests, m.up, m.pods} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register cri metrics: %w", err)
		}
	}
	return m, nil
}
