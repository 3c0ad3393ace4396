package tenant

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// routerMetrics are the router's own: tenants open and series it could
// not give to any tenant. Each tenant's queue has the Queue metrics.
type routerMetrics struct {
	tenants    prometheus.Gauge
	dropped    *prometheus.CounterVec
	reg        prometheus.Registerer
	registered []prometheus.Collector
	once       sync.Once
}

func newRouterMetrics(reg prometheus.Registerer, endpoint string) (*routerMetrics, error) {
	labels := prometheus.Labels{"endpoint": endpoint}
	m := &routerMetrics{
		tenants: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kata_monitor", Subsystem: "remote_write", Name: "tenants", ConstLabels: labels,
			Help: "Tenants with an open queue (tenant routing).",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kata_monitor", Subsystem: "remote_write", Name: "tenant_samples_dropped_total", ConstLabels: labels,
			Help: "Samples dropped before any tenant's queue, by reason: tenant_limit (tenant.max_tenants queues open), tenant_invalid (the label value is not a valid tenant name), tenant_queue_error (the tenant's queue could not be opened, e.g. its WAL directory; tried again next round).",
		}, []string{"reason"}),
	}
	m.dropped.WithLabelValues(reasonTenantLimit)
	m.dropped.WithLabelValues(reasonTenantInvalid)
	m.dropped.WithLabelValues(reasonTenantQueueError)
	if reg == nil {
		return m, nil
	}
	m.reg = reg
	for _, c := range []prometheus.Collector{m.tenants, m.dropped} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		m.registered = append(m.registered, c)
	}
	return m, nil
}

func (m *routerMetrics) unregister() {
	m.once.Do(func() {
		for _, c := range m.registered {
			m.reg.Unregister(c)
		}
	})
}
