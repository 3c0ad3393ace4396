package forwarder

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// selfKey renders a series by all its labels but node (checked apart).
func selfKey(s series.Series) string {
	k := ""
	for _, l := range s.Labels {
		if l.Name != "node" {
			k += l.Name + "=" + l.Value + ","
		}
	}
	return k
}

// TestPushSelfMetrics: kata-monitor's own metrics (gauge, histogram,
// summary) are pushed with the round at its time, with the external labels
// but the metric's own label winning, with their metadata and staleness
// markers; push_self_metrics: false pushes the shim series only. Long for
// its two runs (pushed, opted out), each checked in full.
func TestPushSelfMetrics(t *testing.T) {
	self := prometheus.NewRegistry()
	wrapped := prometheus.WrapRegistererWithPrefix("kata_monitor_", self)
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "queue_lag_seconds", Help: "h"}, []string{"endpoint"})
	gauge.WithLabelValues("vm").Set(3)
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "scrape_ms", Help: "h", Buckets: []float64{1, 2.5}})
	hist.Observe(2)
	sum := prometheus.NewSummary(prometheus.SummaryOpts{Name: "gc_seconds", Help: "h", Objectives: map[float64]float64{0.5: 0.05}})
	sum.Observe(1)
	wrapped.MustRegister(gauge, hist, sum)

	for _, optOut := range []bool{false, true} {
		r := newRig(t, withPush, withConfig(func(c *Config) {
			// endpoint: the metric's own label wins over the external one.
			c.ExternalLabels = map[string]string{"node": "n1", "endpoint": "ext"}
			c.PushSelfMetrics = !optOut
		}), func(_ *rig, _ *Config, d *Deps) { d.Self = self })
		r.sbs.set("aaa")
		r.scraper.set("aaa", "up 1\n")
		ss := r.scheduled(t)
		now := r.clock.Now().UnixMilli()
		if optOut {
			require.Len(t, ss, 1, "push_self_metrics: false pushes the shim series only")
			continue
		}
		got := map[string]float64{}
		for _, s := range ss[1:] {
			require.Len(t, s.Samples, 1)
			assert.Equal(t, now, s.Samples[0].Timestamp, "the round's time")
			assert.Equal(t, "n1", labelsOf(s)["node"], "external labels")
			got[selfKey(s)] = s.Samples[0].Value
		}
		assert.Equal(t, map[string]float64{
			"__name__=kata_monitor_queue_lag_seconds,endpoint=vm,":         3,
			"__name__=kata_monitor_scrape_ms_bucket,endpoint=ext,le=1,":    0,
			"__name__=kata_monitor_scrape_ms_bucket,endpoint=ext,le=2.5,":  1,
			"__name__=kata_monitor_scrape_ms_bucket,endpoint=ext,le=+Inf,": 1,
			"__name__=kata_monitor_scrape_ms_sum,endpoint=ext,":            2,
			"__name__=kata_monitor_scrape_ms_count,endpoint=ext,":          1,
			"__name__=kata_monitor_gc_seconds,endpoint=ext,quantile=0.5,":  1,
			"__name__=kata_monitor_gc_seconds_sum,endpoint=ext,":           1,
			"__name__=kata_monitor_gc_seconds_count,endpoint=ext,":         1,
		}, got)
		assert.Equal(t, float64(len(ss)-1), r.counter(t, "kata_monitor_forwarder_self_samples_pushed_total"))
		// Metadata: the shims' families and the self families, sorted.
		require.NotEmpty(t, r.appender.md)
		var md []string
		for _, m := range r.appender.md[len(r.appender.md)-1] {
			md = append(md, m.Family+":"+string(m.Type))
		}
		assert.Equal(t, []string{"kata_monitor_gc_seconds:summary", "kata_monitor_queue_lag_seconds:gauge",
			"kata_monitor_scrape_ms:histogram", "up:unknown"}, md)

		// A self series that vanishes gets one staleness marker.
		gauge.DeleteLabelValues("vm")
		r.clock.Add(15 * time.Second)
		var markers []string
		for _, s := range r.scheduled(t)[1:] {
			if value.IsStaleNaN(s.Samples[0].Value) {
				markers = append(markers, selfKey(s))
			}
		}
		assert.Equal(t, []string{"__name__=kata_monitor_queue_lag_seconds,endpoint=vm,"}, markers)
		r.clock.Add(15 * time.Second)
		for _, s := range r.scheduled(t) {
			assert.False(t, math.IsNaN(s.Samples[0].Value), "the marker is sent once")
		}
		gauge.WithLabelValues("vm").Set(3)
	}
}
