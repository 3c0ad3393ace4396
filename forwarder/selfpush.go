package forwarder

import (
	"context"
	"math"
	"slices"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
)

// selfPush pushes kata-monitor's own metrics (Deps.Self, what /metrics/self
// serves) after every scheduled round, so that a push-only node is
// observable from the receiver alone (issue: the health dashboard was empty
// on nodes nobody scrapes). Only the schedule goroutine uses it.
//
// Series are named and labelled as a scrape of /metrics/self would store
// them, without the scrape's job and instance: the metric's own labels plus
// external_labels (which never override them); histograms and summaries
// become _bucket{le}/{quantile}, _sum and _count series, le and quantile
// written as the text exposition writes them. metric_relabel_configs, which
// are about shim series, do not apply. Samples carry the round's start
// time; a series that vanishes gets one staleness marker.
type selfPush struct {
	prev, cur map[uint64][]prompb.Label // series of the last push and this one
	lastTS    int64
	series    []prompb.TimeSeries
	samples   []prompb.Sample
	failed    bool // the last gather failed (logged once per streak)
}

// pushSelf gathers the own metrics and hands them to the appenders with
// timestamp ts (ms), then staleness markers for series that vanished.
func (f *Forwarder) pushSelf(ctx context.Context, ts int64) {
	sp := &f.self
	if sp.prev == nil {
		sp.prev, sp.cur = make(map[uint64][]prompb.Label), make(map[uint64][]prompb.Label)
	}
	if ts <= sp.lastTS { // the clock stepped back: the receiver would refuse them
		f.m.samplesDropped.WithLabelValues(reasonOutOfOrder).Add(float64(len(sp.prev)))
		return
	}
	fams, err := f.deps.Self.Gather()
	if err != nil && !sp.failed {
		// Gather returns what it could: push that.
		f.log.Warn("gather own metrics for push", "err", err)
	}
	sp.failed = err != nil
	sp.lastTS = ts
	sp.series, sp.samples = sp.series[:0], sp.samples[:0]
	clear(sp.cur)
	lb := labels.NewScratchBuilder(16)
	add := func(name string, m *dto.Metric, extraName, extraValue string, v float64) {
		lb.Reset()
		lb.Add(model.MetricNameLabel, name)
		for _, lp := range m.GetLabel() {
			if lp.GetValue() != "" {
				lb.Add(lp.GetName(), lp.GetValue())
			}
		}
		if extraName != "" {
			lb.Add(extraName, extraValue)
		}
		lb.Sort()
		ls := lb.Labels()
		if len(f.env.external) > 0 {
			b := labels.NewBuilder(ls)
			for _, l := range f.env.external {
				if ls.Get(l.Name) == "" {
					b.Set(l.Name, l.Value)
				}
			}
			ls = b.Labels()
		}
		h := ls.Hash()
		if _, dup := sp.cur[h]; dup {
			return
		}
		pl := sp.prev[h]
		if pl == nil {
			pl = make([]prompb.Label, 0, ls.Len())
			ls.Range(func(l labels.Label) { pl = append(pl, prompb.Label{Name: l.Name, Value: l.Value}) })
		}
		sp.cur[h] = pl
		sp.series = append(sp.series, prompb.TimeSeries{Labels: pl})
		sp.samples = append(sp.samples, prompb.Sample{Value: v, Timestamp: ts})
	}
	for _, mf := range fams {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(name, m, "", "", m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, m, "", "", m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(name, m, "", "", m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(name, m, model.QuantileLabel, formatFloat(q.GetQuantile()), q.GetValue())
				}
				add(name+"_sum", m, "", "", s.GetSampleSum())
				add(name+"_count", m, "", "", float64(s.GetSampleCount()))
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, b := range h.GetBucket() {
					inf = inf || math.IsInf(b.GetUpperBound(), +1)
					add(name+"_bucket", m, model.BucketLabel, formatFloat(b.GetUpperBound()), float64(b.GetCumulativeCount()))
				}
				if !inf { // the text format writes the implicit +Inf bucket
					add(name+"_bucket", m, model.BucketLabel, "+Inf", float64(h.GetSampleCount()))
				}
				add(name+"_sum", m, "", "", h.GetSampleSum())
				add(name+"_count", m, "", "", float64(h.GetSampleCount()))
			}
		}
	}
	staleNaN := math.Float64frombits(value.StaleNaN)
	stale := 0
	for h, pl := range sp.prev {
		if _, ok := sp.cur[h]; !ok {
			sp.series = append(sp.series, prompb.TimeSeries{Labels: pl})
			sp.samples = append(sp.samples, prompb.Sample{Value: staleNaN, Timestamp: ts})
			stale++
		}
	}
	sp.prev, sp.cur = sp.cur, sp.prev
	for i := range sp.series {
		sp.series[i].Samples = sp.samples[i : i+1 : i+1]
	}
	for chunk := range slices.Chunk(sp.series, pushChunk) {
		f.sendSeries(ctx, chunk)
	}
	f.m.selfSamples.Add(float64(len(sp.series)))
	f.m.stalenessMarks.Add(float64(stale))
}

// formatFloat writes le and quantile values as the text exposition does.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
