package shim

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
)

// Endpoint label values of kata_monitor_shim_requests_total.
const (
	endpointMetrics  = "metrics"
	endpointAgentURL = "agent_url"
	endpointDebug    = "debug"
)

// Result label values of kata_monitor_shim_requests_total.
const (
	resultSuccess  = "success"
	resultError    = "error"
	resultTimeout  = "timeout"
	resultTooLarge = "too_large"
)

// metrics are the pool's self-metrics. Labels are bounded (3 endpoints x 4
// results): per-sandbox series belong to the forwarder.
type metrics struct {
	requests *prometheus.CounterVec
}

// newMetrics registers the pool's metrics on reg; a nil reg registers
// nothing (the counters still work).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kata_monitor",
		Subsystem: "shim",
		Name:      "requests_total",
		Help:      "Requests to shim monitor sockets, by endpoint and result (success, error, timeout, too_large).",
	}, []string{"endpoint", "result"})}
	for _, e := range []string{endpointMetrics, endpointAgentURL, endpointDebug} {
		for _, r := range []string{resultSuccess, resultError, resultTimeout, resultTooLarge} {
			m.requests.WithLabelValues(e, r) // export zeros so rate() works from the start
		}
	}
	if reg != nil {
		if err := reg.Register(m.requests); err != nil {
			return nil, fmt.Errorf("register shim metrics: %w", err)
		}
	}
	return m, nil
}

// observe counts one finished request to endpoint.
func (m *metrics) observe(endpoint string, err error) {
	m.requests.WithLabelValues(endpoint, resultOf(err)).Inc()
}

// resultOf classifies a request's error into a result label value.
func resultOf(err error) string {
	var nerr net.Error
	switch {
	case err == nil:
		return resultSuccess
	case errors.Is(err, ErrTooLarge):
		return resultTooLarge
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return resultTimeout
	default:
		return resultError
	}
}
