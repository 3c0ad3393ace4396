package push

import (
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// Self converts kata-monitor's own metrics (what /metrics/self serves) into
// remote-write series after every scheduled round, so that a push-only node
// is observable from the receiver alone (issue: the health dashboard was
// empty on nodes nobody scrapes). Build it with NewSelf. It is not safe for
// concurrent use: only the schedule goroutine calls it.
//
// Series are named and labelled as a scrape of /metrics/self would store
// them, without the scrape's job and instance: the metric's own labels plus
// external_labels (which never override them); histograms and summaries
// become _bucket{le}/{quantile}, _sum and _count series, le and quantile
// written as the text exposition writes them. metric_relabel_configs, which
// are about shim series, do not apply. Samples carry the round's start
// time; a series that vanishes gets one staleness marker.
type Self struct {
	gatherer  prometheus.Gatherer
	log       *slog.Logger
	prev, cur map[uint64]selfSeries // series of the last push and this one
	lastTS    int64
	series    []series.Series
	samples   []series.Sample
	failed    bool // the last gather failed (logged once per streak)
	// md is the HELP/TYPE of the families last pushed, sorted by name.
	md []series.Metadata
	// The push being built: its builder, external labels and the
	// metadata of the family being added.
	lb       labels.ScratchBuilder
	external []labels.Label
	famMD    *series.Metadata
}

// selfSeries is one pushed own series: its labels and family metadata.
type selfSeries struct {
	ls []labels.Label
	md *series.Metadata
}

// NewSelf returns a Self that gathers from g, adds the external labels
// (sorted by name; never overriding a metric's own label) and logs gather
// failures to log.
func NewSelf(g prometheus.Gatherer, external []labels.Label, log *slog.Logger) *Self {
	return &Self{gatherer: g, external: external, log: log,
		prev: make(map[uint64]selfSeries), cur: make(map[uint64]selfSeries)}
}

// Push gathers the own metrics and hands them to emit with timestamp ts
// (Unix ms), in chunks of at most Chunk, then staleness markers for series
// that vanished. The chunks are not modified after emit returns. A ts not
// after the previous push's (the clock stepped back) pushes nothing: the
// receiver would refuse the samples, counted as out_of_order. mdChanged
// reports whether the families' metadata changed (see Metadata).
func (sp *Self) Push(ts int64, emit func([]series.Series)) (c Counts, mdChanged bool) {
	if ts <= sp.lastTS {
		c.Dropped[1] = len(sp.prev)
		return c, false
	}
	fams, err := sp.gatherer.Gather()
	if err != nil && !sp.failed {
		// Gather returns what it could: push that.
		sp.log.Warn("gather own metrics for push", "err", err)
	}
	sp.failed = err != nil
	sp.lastTS = ts
	sp.series, sp.samples = sp.series[:0], sp.samples[:0]
	clear(sp.cur)
	md := make([]series.Metadata, 0, len(fams))
	for _, mf := range fams {
		md = append(md, series.Metadata{Type: selfType(mf.GetType()), Family: mf.GetName(), Help: mf.GetHelp()})
		sp.addFamily(mf)
	}
	c.StalenessMarkers = sp.addMarkers()
	sp.prev, sp.cur = sp.cur, sp.prev
	for i := range sp.series {
		sp.series[i].Samples = sp.samples[i : i+1 : i+1]
	}
	for chunk := range slices.Chunk(sp.series, Chunk) {
		emit(chunk)
	}
	c.Samples = len(sp.series)
	slices.SortFunc(md, func(a, b series.Metadata) int { return strings.Compare(a.Family, b.Family) })
	if slices.Equal(md, sp.md) {
		return c, false
	}
	sp.md = md
	return c, true
}

// addFamily adds the series of one gathered family, as the text
// exposition writes them.
func (sp *Self) addFamily(mf *dto.MetricFamily) {
	name := mf.GetName()
	sp.famMD = &series.Metadata{Type: selfType(mf.GetType()), Family: name, Help: mf.GetHelp()}
	for _, m := range mf.GetMetric() {
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			sp.add(name, m, "", "", m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			sp.add(name, m, "", "", m.GetGauge().GetValue())
		case dto.MetricType_UNTYPED:
			sp.add(name, m, "", "", m.GetUntyped().GetValue())
		case dto.MetricType_SUMMARY:
			s := m.GetSummary()
			for _, q := range s.GetQuantile() {
				sp.add(name, m, model.QuantileLabel, formatFloat(q.GetQuantile()), q.GetValue())
			}
			sp.add(name+"_sum", m, "", "", s.GetSampleSum())
			sp.add(name+"_count", m, "", "", float64(s.GetSampleCount()))
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			inf := false
			for _, b := range h.GetBucket() {
				inf = inf || math.IsInf(b.GetUpperBound(), +1)
				sp.add(name+"_bucket", m, model.BucketLabel, formatFloat(b.GetUpperBound()), float64(b.GetCumulativeCount()))
			}
			if !inf { // the text format writes the implicit +Inf bucket
				sp.add(name+"_bucket", m, model.BucketLabel, "+Inf", float64(h.GetSampleCount()))
			}
			sp.add(name+"_sum", m, "", "", h.GetSampleSum())
			sp.add(name+"_count", m, "", "", float64(h.GetSampleCount()))
		}
	}
}

// add adds the series named name with m's labels (and extraName when not
// empty) and the external labels, once per push, with value v.
func (sp *Self) add(name string, m *dto.Metric, extraName, extraValue string, v float64) {
	lb := &sp.lb
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
	if len(sp.external) > 0 {
		b := labels.NewBuilder(ls)
		for _, l := range sp.external {
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
	pl := sp.prev[h].ls
	if pl == nil {
		pl = make([]labels.Label, 0, ls.Len())
		ls.Range(func(l labels.Label) { pl = append(pl, l) })
	}
	sp.cur[h] = selfSeries{ls: pl, md: sp.famMD}
	sp.series = append(sp.series, series.Series{Labels: pl, Metadata: sp.famMD})
	sp.samples = append(sp.samples, series.Sample{Value: v, Timestamp: sp.lastTS})
}

// addMarkers adds a staleness marker for every series of the last push
// missing from this one, and returns how many.
func (sp *Self) addMarkers() int {
	staleNaN := math.Float64frombits(value.StaleNaN)
	stale := 0
	for h, ps := range sp.prev {
		if _, ok := sp.cur[h]; !ok {
			sp.series = append(sp.series, series.Series{Labels: ps.ls, Metadata: ps.md})
			sp.samples = append(sp.samples, series.Sample{Value: staleNaN, Timestamp: sp.lastTS})
			stale++
		}
	}
	return stale
}

// Metadata merges the shims' family metadata (sorted by name) with the
// self families' of the last Push into a new slice sorted by name; a name
// in both keeps the shims' entry (they cannot clash: shims' families are
// never kata_monitor_*).
func (sp *Self) Metadata(shims []series.Metadata) []series.Metadata {
	self := sp.md
	out := make([]series.Metadata, 0, len(shims)+len(self))
	i, j := 0, 0
	for i < len(shims) || j < len(self) {
		switch {
		case j == len(self) || (i < len(shims) && shims[i].Family <= self[j].Family):
			if j < len(self) && shims[i].Family == self[j].Family {
				j++
			}
			out = append(out, shims[i])
			i++
		default:
			out = append(out, self[j])
			j++
		}
	}
	return out
}

func selfType(t dto.MetricType) model.MetricType {
	switch t {
	case dto.MetricType_COUNTER:
		return model.MetricTypeCounter
	case dto.MetricType_GAUGE:
		return model.MetricTypeGauge
	case dto.MetricType_HISTOGRAM:
		return model.MetricTypeHistogram
	case dto.MetricType_GAUGE_HISTOGRAM:
		return model.MetricTypeGaugeHistogram
	case dto.MetricType_SUMMARY:
		return model.MetricTypeSummary
	}
	return model.MetricTypeUnknown
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
