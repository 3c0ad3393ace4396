package wal

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the values of the "reason" label.
const (
	reasonBudget     = "disk_budget"
	reasonWriteError = "write_error"
	reasonCorrupt    = "corrupt"
)

type metrics struct {
	reg        prometheus.Registerer
	registered []prometheus.Collector

	bytes           prometheus.Gauge
	segments        prometheus.Gauge
	pendingSamples  prometheus.Gauge
	blocksAppended  prometheus.Counter
	samplesAppended prometheus.Counter
	bytesAppended   prometheus.Counter
	droppedSamples  *prometheus.CounterVec
	droppedBlocks   *prometheus.CounterVec
	corruptions     prometheus.Counter
	fsyncDuration   prometheus.Histogram
}

// newMetrics registers the queue's metrics on reg (nil: not registered).
// Registration errors are returned rather than panicking so that two queues
// configured with the same endpoint name fail Open cleanly.
func newMetrics(reg prometheus.Registerer, endpoint string) (*metrics, error) {
	labels := prometheus.Labels{"endpoint": endpoint}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "kata_monitor", Subsystem: "wal", Name: name, Help: help, ConstLabels: labels}
	}
	m := &metrics{
		reg:             reg,
		bytes:           prometheus.NewGauge(prometheus.GaugeOpts(opts("bytes", "Bytes of segment files on disk."))),
		segments:        prometheus.NewGauge(prometheus.GaugeOpts(opts("segments", "Segment files on disk."))),
		pendingSamples:  prometheus.NewGauge(prometheus.GaugeOpts(opts("pending_samples", "Samples appended but not yet acknowledged or dropped."))),
		blocksAppended:  prometheus.NewCounter(prometheus.CounterOpts(opts("blocks_appended_total", "Blocks passed to Append, including those that failed to be written."))),
		samplesAppended: prometheus.NewCounter(prometheus.CounterOpts(opts("samples_appended_total", "Samples passed to Append, including those that failed to be written."))),
		bytesAppended:   prometheus.NewCounter(prometheus.CounterOpts(opts("bytes_appended_total", "Record bytes (encoded blocks, before segment framing) passed to Append, including those that failed to be written."))),
		droppedSamples:  prometheus.NewCounterVec(prometheus.CounterOpts(opts("dropped_samples_total", "Samples lost by the queue, by reason.")), []string{"reason"}),
		droppedBlocks:   prometheus.NewCounterVec(prometheus.CounterOpts(opts("dropped_blocks_total", "Blocks lost by the queue, by reason.")), []string{"reason"}),
		corruptions:     prometheus.NewCounter(prometheus.CounterOpts(opts("corruptions_total", "Corrupt or torn segment tails, undecodable records and corrupt ack files found."))),
		fsyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kata_monitor", Subsystem: "wal", Name: "fsync_duration_seconds",
			Help:        "Duration of fsync calls on the active segment.",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
	for _, r := range []string{reasonBudget, reasonWriteError, reasonCorrupt} {
		m.droppedSamples.WithLabelValues(r)
		m.droppedBlocks.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.bytes, m.segments, m.pendingSamples, m.blocksAppended,
		m.samplesAppended, m.bytesAppended, m.droppedSamples, m.droppedBlocks, m.corruptions, m.fsyncDuration} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, fmt.Errorf("register wal metrics for endpoint %q: %w", endpoint, err)
		}
		m.registered = append(m.registered, c)
	}
	return m, nil
}

// unregister removes the metrics so a reopened queue can register again.
func (m *metrics) unregister() {
	for _, c := range m.registered {
		m.reg.Unregister(c)
	}
	m.registered = nil
}

func (m *metrics) drop(reason string, blocks, samples int) {
	if blocks == 0 {
		return
	}
	m.droppedBlocks.WithLabelValues(reason).Add(float64(blocks))
	m.droppedSamples.WithLabelValues(reason).Add(float64(samples))
}
