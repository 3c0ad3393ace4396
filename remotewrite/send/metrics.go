package send

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kata-containers/kata-monitor/remotewrite/internal/collectors"
	"github.com/kata-containers/kata-monitor/remotewrite/send/client"
)

// Metrics are one endpoint's self-metrics: the queue counts what it
// appends (Appended, DroppedByRelabel) and its metadata requests, the
// Sender the rest. The endpoint label comes from the registerer the queue
// wraps, so two endpoints never collide.
type Metrics struct {
	appended        prometheus.Counter
	sent            prometheus.Counter
	failed          prometheus.Counter
	retried         prometheus.Counter
	droppedRefused  prometheus.Counter
	droppedTooLarge prometheus.Counter
	dropped429      prometheus.Counter
	droppedRelabel  prometheus.Counter
	dropped         *prometheus.CounterVec // by reason, for refusal reasons (reason.go)
	droppedPartial  prometheus.Counter
	fallbacks       prometheus.Counter
	splits          *prometheus.CounterVec
	failingSince    prometheus.Gauge
	sendLimit       prometheus.Gauge
	requests        *prometheus.CounterVec
	sendDuration    prometheus.Histogram
	bytesSent       prometheus.Counter
	highestSent     prometheus.Gauge
	highestAppended prometheus.Gauge
	lag             prometheus.GaugeFunc
	lastSuccess     prometheus.Gauge
	metadataSent    prometheus.Counter
	metadataFailed  prometheus.Counter

	group *collectors.Group

	// mu guards the highest timestamps and the failure streak.
	mu                  sync.Mutex
	highestSentMs       int64
	highestAppendedMs   int64
	highestSentSet      bool
	highestAppendedSeen bool
	failingSinceSec     float64 // 0: the last attempt succeeded
}

// NewMetrics builds and registers the metrics (reg nil: unregistered);
// lag computes queue_lag_seconds when it is collected. A registration
// conflict (two endpoints with one name) is an error, not a panic.
func NewMetrics(reg prometheus.Registerer, lag func() float64) (*Metrics, error) {
	m := newMetrics(lag)
	g, err := collectors.Register(reg, m.appended, m.sent, m.failed, m.retried, m.dropped, m.fallbacks,
		m.splits, m.failingSince, m.sendLimit, m.requests, m.sendDuration, m.bytesSent, m.highestSent, m.highestAppended, m.lag,
		m.lastSuccess, m.metadataSent, m.metadataFailed)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	m.group = g
	return m, nil
}

// newMetrics defines the metrics, one per line (the help texts are the
// documentation of each), unregistered.
func newMetrics(lag func() float64) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kata_monitor", Subsystem: "remote_write", Name: name, Help: help,
		})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kata_monitor", Subsystem: "remote_write", Name: name, Help: help,
		})
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kata_monitor", Subsystem: "remote_write", Name: "samples_dropped_total",
		Help: "Samples dropped on purpose, by reason: series a receiver refused with 400, 409 or 422 on their own, after splitting, by the cause its answer names: too_old (outside the accepted time window), out_of_order, duplicate, too_new, limit (a per-tenant limit), invalid, or refused (no known cause); too_large (a single series refused with 413), http_429 (429 with retry_on_http_429 false), relabel (write_relabel_configs), receiver_partial_write (a remote write 2.0 receiver answered 2xx but its X-Prometheus-Remote-Write-Samples-Written header counts fewer samples than sent).",
	}, []string{"reason"})
	for _, r := range client.RefusalReasons {
		dropped.WithLabelValues(r)
	}
	m := &Metrics{
		appended:        counter("samples_appended_total", "Samples queued in the WAL after relabeling."),
		sent:            counter("samples_sent_total", "Samples the receiver acknowledged."),
		failed:          counter("samples_failed_total", "Samples in send attempts that failed and will be retried."),
		retried:         counter("samples_retried_total", "Samples sent again after a failed attempt."),
		droppedRefused:  dropped.WithLabelValues(client.ReasonRefused),
		droppedTooLarge: dropped.WithLabelValues(reasonTooLarge),
		dropped429:      dropped.WithLabelValues(reason429),
		droppedRelabel:  dropped.WithLabelValues(reasonRelabel),
		dropped:         dropped,
		droppedPartial:  dropped.WithLabelValues(reasonPartial),
		fallbacks:       counter("protocol_fallbacks_total", "Times the endpoint fell back from remote write 2.0 to 1.0 because the receiver refused 2.0 (415, 2xx without Written headers, or 400 before any 2.0 request was written); at most 1 per start."),
		splits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kata_monitor", Subsystem: "remote_write", Name: "request_splits_total",
			Help: "Requests split in two halves to isolate refused series (400, 409, 422) or to fit the receiver's size limit (413), by the status code that caused the split.",
		}, []string{"code"}),
		failingSince: gauge("failing_since_timestamp_seconds", "Unix time of the first failed attempt (network error or a retried status) of the current failure streak; 0 once an attempt succeeds. Alert on time() - this > N and this > 0."),
		sendLimit:    gauge("max_samples_per_send", "Samples per request now: queue_config.max_samples_per_send, lowered after a 413 answer."),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kata_monitor", Subsystem: "remote_write", Name: "requests_total",
			Help: "Write requests by HTTP status code (\"error\": no answer).",
		}, []string{"code"}),
		sendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kata_monitor", Subsystem: "remote_write", Name: "send_duration_seconds",
			Help:    "Duration of one write request attempt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		bytesSent:       counter("bytes_sent_total", "Compressed request bytes the receiver acknowledged."),
		highestSent:     gauge("highest_sent_timestamp_seconds", "Newest sample timestamp the receiver acknowledged."),
		highestAppended: gauge("highest_appended_timestamp_seconds", "Newest sample timestamp queued in the WAL."),
		lag: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "kata_monitor", Subsystem: "remote_write", Name: "queue_lag_seconds",
			Help: "Age (wall clock) of the oldest sample in the WAL not yet sent or dropped; 0 only when nothing is pending. Read from the WAL: counts from the first round and across restarts.",
		}, lag),
		lastSuccess:    gauge("last_send_success_timestamp_seconds", "Wall-clock time of the last successful request."),
		metadataSent:   counter("metadata_sent_total", "Metric metadata entries the receiver acknowledged."),
		metadataFailed: counter("metadata_failed_total", "Metric metadata entries whose request failed (not retried)."),
	}
	return m
}

// Unregister removes the metrics so the endpoint can be opened again in
// the same process.
func (m *Metrics) Unregister() { m.group.Unregister() }

// observeRequest is the client's per-attempt hook.
func (m *Metrics) observeRequest(code string, d time.Duration) {
	m.requests.WithLabelValues(code).Inc()
	m.sendDuration.Observe(d.Seconds())
}

// Values of samples_dropped_total's reason label set here, beside the
// refusal reasons (client.RefusalReasons); the WAL has its own:
// disk_budget, write_error, corrupt.
const (
	reasonTooLarge = "too_large"
	reason429      = "http_429"
	reasonRelabel  = "relabel"
	reasonPartial  = "receiver_partial_write"
)

// commit adds one finished block's tally.
func (m *Metrics) commit(t tally) {
	if t.sent > 0 {
		m.sent.Add(float64(t.sent))
		m.bytesSent.Add(float64(t.bytes))
		m.sentUpTo(t.maxSentTs)
	}
	m.droppedRefused.Add(float64(t.refused))
	for reason, n := range t.refusedBy {
		m.dropped.WithLabelValues(reason).Add(float64(n))
	}
	m.droppedTooLarge.Add(float64(t.tooLarge))
	m.dropped429.Add(float64(t.notRetried))
	m.droppedPartial.Add(float64(t.partial))
}

// succeeded records a 2xx answer at now: the failure streak ends.
func (m *Metrics) succeeded(now time.Time) {
	m.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failingSinceSec = 0
	m.failingSince.Set(0)
}

// failing records a failed attempt at now; the streak starts with the
// first one.
func (m *Metrics) failing(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failingSinceSec == 0 {
		m.failingSinceSec = float64(now.UnixNano()) / 1e9
		m.failingSince.Set(m.failingSinceSec)
	}
}

// Appended records samples just queued in the WAL, the newest at ms.
func (m *Metrics) Appended(samples int, ms int64) {
	m.appended.Add(float64(samples))
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.highestAppendedSeen || ms > m.highestAppendedMs {
		m.highestAppendedMs, m.highestAppendedSeen = ms, true
		m.highestAppended.Set(float64(ms) / 1e3)
	}
}

// sentUpTo records the newest timestamp (ms) the receiver acknowledged.
func (m *Metrics) sentUpTo(ms int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.highestSentSet || ms > m.highestSentMs {
		m.highestSentMs, m.highestSentSet = ms, true
		m.highestSent.Set(float64(ms) / 1e3)
	}
}

// DroppedByRelabel counts samples whose series write_relabel_configs
// dropped.
func (m *Metrics) DroppedByRelabel(n int) { m.droppedRelabel.Add(float64(n)) }

// Metadata counts the entries of one metadata request: sent when the
// receiver took it, else failed (metadata is not retried).
func (m *Metrics) Metadata(entries int, sent bool) {
	if sent {
		m.metadataSent.Add(float64(entries))
		return
	}
	m.metadataFailed.Add(float64(entries))
}
