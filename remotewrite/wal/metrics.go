package wal

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kata-containers/kata-monitor/remotewrite/internal/collectors"
)

// Drop reasons, the values of the "reason" label.
const (
	reasonBudget     = "disk_budget"
	reasonWriteError = "write_error"
	reasonCorrupt    = "corrupt"
)

// metrics are the queue's own: its files, shared by its streams.
type metrics struct {
	group *collectors.Group

	bytes         prometheus.Gauge
	segments      prometheus.Gauge
	corruptions   prometheus.Counter
	fsyncDuration prometheus.Histogram
}

// streamMetrics are one stream's (one tenant's): what it was given, what
// it lost and what it still holds.
type streamMetrics struct {
	group *collectors.Group

	pendingSamples  prometheus.Gauge
	blocksAppended  prometheus.Counter
	samplesAppended prometheus.Counter
	bytesAppended   prometheus.Counter
	droppedSamples  *prometheus.CounterVec
	droppedBlocks   *prometheus.CounterVec
}

func walOpts(endpoint, name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: "kata_monitor", Subsystem: "wal", Name: name, Help: help,
		ConstLabels: prometheus.Labels{"endpoint": endpoint}}
}

// newMetrics registers the queue's metrics on reg (nil: not registered).
// Registration errors are returned rather than panicking so that two queues
// configured with the same endpoint name fail Open cleanly.
func newMetrics(reg prometheus.Registerer, endpoint string) (*metrics, error) {
	opts := func(name, help string) prometheus.Opts { return walOpts(endpoint, name, help) }
	m := &metrics{
		bytes:       prometheus.NewGauge(prometheus.GaugeOpts(opts("bytes", "Bytes of segment files on disk."))),
		segments:    prometheus.NewGauge(prometheus.GaugeOpts(opts("segments", "Segment files on disk."))),
		corruptions: prometheus.NewCounter(prometheus.CounterOpts(opts("corruptions_total", "Corrupt or torn segment tails, undecodable records and corrupt ack files found."))),
		fsyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kata_monitor", Subsystem: "wal", Name: "fsync_duration_seconds",
			Help:        "Duration of fsync calls on the active segment.",
			ConstLabels: prometheus.Labels{"endpoint": endpoint},
			Buckets:     prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
	g, err := collectors.Register(reg, m.bytes, m.segments, m.corruptions, m.fsyncDuration)
	if err != nil {
		return nil, fmt.Errorf("register wal metrics for endpoint %q: %w", endpoint, err)
	}
	m.group = g
	return m, nil
}

// newStreamMetrics registers a stream's metrics on reg (nil: not
// registered); a tenant's stream gets reg wrapped with its tenant label.
func newStreamMetrics(reg prometheus.Registerer, endpoint string) (*streamMetrics, error) {
	opts := func(name, help string) prometheus.Opts { return walOpts(endpoint, name, help) }
	m := &streamMetrics{
		pendingSamples:  prometheus.NewGauge(prometheus.GaugeOpts(opts("pending_samples", "Samples appended but not yet acknowledged or dropped."))),
		blocksAppended:  prometheus.NewCounter(prometheus.CounterOpts(opts("blocks_appended_total", "Blocks passed to Append, including those that failed to be written."))),
		samplesAppended: prometheus.NewCounter(prometheus.CounterOpts(opts("samples_appended_total", "Samples passed to Append, including those that failed to be written."))),
		bytesAppended:   prometheus.NewCounter(prometheus.CounterOpts(opts("bytes_appended_total", "Record bytes (encoded blocks, before segment framing) passed to Append, including those that failed to be written."))),
		droppedSamples:  prometheus.NewCounterVec(prometheus.CounterOpts(opts("dropped_samples_total", "Samples lost by the queue, by reason.")), []string{"reason"}),
		droppedBlocks:   prometheus.NewCounterVec(prometheus.CounterOpts(opts("dropped_blocks_total", "Blocks lost by the queue, by reason.")), []string{"reason"}),
	}
	for _, r := range []string{reasonBudget, reasonWriteError, reasonCorrupt} {
		m.droppedSamples.WithLabelValues(r)
		m.droppedBlocks.WithLabelValues(r)
	}
	g, err := collectors.Register(reg, m.pendingSamples, m.blocksAppended,
		m.samplesAppended, m.bytesAppended, m.droppedSamples, m.droppedBlocks)
	if err != nil {
		return nil, fmt.Errorf("register wal metrics for endpoint %q: %w", endpoint, err)
	}
	m.group = g
	return m, nil
}

// unregister removes the metrics so a reopened queue can register again.
func (m *metrics) unregister() { m.group.Unregister() }

func (m *streamMetrics) unregister() { m.group.Unregister() }

// carryOver adds to m what o counted: the counts of a stream without a
// reader (on unregistered metrics) move to the metrics its next reader
// registers, so drops and appends of a tenant's blocks while it had no
// reader (its backlog found at start or moved in from the per-tenant
// layout, or appended after its reader closed) are not lost to scrapes.
func (m *streamMetrics) carryOver(o *streamMetrics) {
	m.blocksAppended.Add(counterValue(o.blocksAppended))
	m.samplesAppended.Add(counterValue(o.samplesAppended))
	m.bytesAppended.Add(counterValue(o.bytesAppended))
	for _, r := range []string{reasonBudget, reasonWriteError, reasonCorrupt} {
		m.droppedBlocks.WithLabelValues(r).Add(counterValue(o.droppedBlocks.WithLabelValues(r)))
		m.droppedSamples.WithLabelValues(r).Add(counterValue(o.droppedSamples.WithLabelValues(r)))
	}
}

// counts reports whether m counted anything.
func (m *streamMetrics) counts() bool {
	if counterValue(m.blocksAppended) > 0 {
		return true
	}
	for _, r := range []string{reasonBudget, reasonWriteError, reasonCorrupt} {
		if counterValue(m.droppedBlocks.WithLabelValues(r)) > 0 {
			return true
		}
	}
	return false
}

// counterValue reads a counter's value.
func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}

func (m *streamMetrics) drop(reason string, blocks, samples int) {
	if blocks == 0 {
		return
	}
	m.droppedBlocks.WithLabelValues(reason).Add(float64(blocks))
	m.droppedSamples.WithLabelValues(reason).Add(float64(samples))
}
