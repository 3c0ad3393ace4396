package forwarder

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/push"
	"github.com/kata-containers/kata-monitor/forwarder/scrape"
)

const namespace = "kata_monitor"

// metrics are the forwarder's self-metrics. The first four keep upstream
// kata-monitor's names so existing dashboards keep working.
type metrics struct {
	runningShims    prometheus.Gauge
	scrapes         prometheus.Counter
	scrapesFailed   prometheus.Counter
	scrapeDuration  prometheus.Histogram
	rounds          *prometheus.CounterVec
	roundDuration   prometheus.Histogram
	roundsSkipped   prometheus.Counter
	relabelDropped  prometheus.Counter
	duplicates      prometheus.Counter
	parseErrors     prometheus.Counter
	invalidSeries   prometheus.Counter
	stalenessMarks  prometheus.Counter
	appenderErrors  prometheus.Counter
	lastRoundTstamp prometheus.Gauge
	samplesDropped  *prometheus.CounterVec
	samplesRepeated prometheus.Counter
	selfSamples     prometheus.Counter
	dropped         *prometheus.CounterVec // by exposition.DropReason
	// scrape hands the scrape stage its collectors (the ones above).
	scrape scrape.Metrics
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	}
	m := &metrics{
		runningShims: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "running_shim_count",
			Help: "Running shim count (sandboxes in the last round)."}),
		scrapes:       counter("scrape_count", "Scrape count of shims."),
		scrapesFailed: counter("scrape_failed_count", "Failed scrape count of shims."),
		scrapeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace,
			Name:    "scrape_durations_histogram_milliseconds",
			Help:    "Time used to scrape one shim, in milliseconds.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "rounds_total",
			Help: "Scrape rounds by trigger: schedule (push) or pull (a /metrics request with no fresh snapshot)."},
			[]string{"trigger"}),
		roundDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace,
			Name: "round_duration_seconds", Help: "Duration of one scrape round of all sandboxes.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		roundsSkipped:   counter("rounds_skipped_total", "Scheduled rounds skipped because the previous round was still running."),
		relabelDropped:  counter("series_relabel_dropped_total", "Samples dropped by metric_relabel_configs."),
		duplicates:      counter("duplicate_series_total", "Samples dropped because the same series appeared earlier in the round."),
		parseErrors:     counter("scrape_parse_errors_total", "Shim expositions that failed to parse; series before the error are kept."),
		invalidSeries:   counter("invalid_series_total", "Samples dropped because their names or label values are invalid (e.g. not UTF-8)."),
		stalenessMarks:  counter("staleness_markers_total", "Staleness markers pushed for series that disappeared."),
		appenderErrors:  counter("appender_errors_total", "Rounds an appender failed to accept."),
		dropped:         newDroppedCounter(),
		lastRoundTstamp: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "last_round_timestamp_seconds", Help: "Unix time of the start of the last finished round."}),
		samplesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "forwarder",
			Name: "samples_dropped_total",
			Help: "Samples not queued for push because their timestamp does not advance their series: duplicate_timestamp (same time, other value), out_of_order (earlier, or the clock stepped back), too_far_in_future (more than 10m ahead)."},
			[]string{"reason"}),
		samplesRepeated: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "forwarder",
			Name: "samples_repeated_total",
			Help: "Samples not queued again because they repeat their series' last queued sample (same own timestamp, same value): nothing lost."}),
		selfSamples: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "forwarder",
			Name: "self_samples_pushed_total",
			Help: "Samples of kata-monitor's own metrics handed to the remote-write queues (push_self_metrics), staleness markers included."}),
	}
	for _, r := range push.Reasons {
		m.samplesDropped.WithLabelValues(r)
	}
	m.scrape = scrape.Metrics{Scrapes: m.scrapes, ScrapesFailed: m.scrapesFailed, ScrapeDuration: m.scrapeDuration,
		ParseErrors: m.parseErrors, InvalidSeries: m.invalidSeries, Duplicates: m.duplicates, Dropped: m.dropped}
	m.rounds.WithLabelValues("schedule")
	m.rounds.WithLabelValues("pull")
	for _, c := range []prometheus.Collector{m.runningShims, m.scrapes, m.scrapesFailed, m.scrapeDuration,
		m.rounds, m.roundDuration, m.roundsSkipped, m.relabelDropped, m.duplicates, m.parseErrors,
		m.invalidSeries, m.stalenessMarks, m.appenderErrors, m.lastRoundTstamp, m.samplesDropped, m.samplesRepeated,
		m.selfSamples, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func newDroppedCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "series_dropped_total",
		Help: "Samples of shim series left out, by reason: duplicate and invalid (pull and push); invalid_for_type, " +
			"type_conflict and name_clash (pull only: such samples are still pushed); escape_clash (pull answers to " +
			"clients without UTF-8 names). Per sandbox on /sandboxes."},
		[]string{"reason"})
	for r := range exposition.NumDropReasons {
		c.WithLabelValues(r.String())
	}
	return c
}

// addPush adds what building one push (shim round or own metrics) counted.
func (m *metrics) addPush(c push.Counts) {
	m.relabelDropped.Add(float64(c.RelabelDropped))
	m.duplicates.Add(float64(c.Duplicates))
	m.stalenessMarks.Add(float64(c.StalenessMarkers))
	for i, n := range c.Dropped {
		if n > 0 {
			m.samplesDropped.WithLabelValues(push.Reasons[i]).Add(float64(n))
		}
	}
	if c.Repeated > 0 {
		m.samplesRepeated.Add(float64(c.Repeated))
	}
}
