package forwarder

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
)

// seriesRef is one pushed series across sandboxes and rounds, keyed by the
// hash of its final label set (collisions of the 64-bit hash are ignored, as
// Prometheus does for staleness tracking in its scrape cache).
type seriesRef struct {
	labels []prompb.Label
	hash   uint64
	refs   int    // entries currently bound to it
	last   uint64 // last push round that sent a sample for it
}

// pushState is what the push phase keeps between scheduled rounds. Only the
// round holding the baton touches it.
type pushState struct {
	round      uint64
	refs       map[uint64]*seriesRef
	candidates []*seriesRef // lost an entry since the last push round
	series     []prompb.TimeSeries
	samples    []prompb.Sample
	md         []prompb.MetricMetadata
	mdRound    uint64
}

// release moves the entries that disappeared into the staleness candidates.
// Every round does it (pull rounds too), so refs stay balanced.
func (ps *pushState) release(states []*sandboxState) {
	for _, st := range states {
		for _, e := range st.evicted {
			if r := e.ref; r != nil {
				r.refs--
				ps.candidates = append(ps.candidates, r)
				e.ref = nil
			}
		}
		clear(st.evicted)
		st.evicted = st.evicted[:0]
	}
}

func (ps *pushState) bind(e *entry) *seriesRef {
	r := ps.refs[e.hash]
	if r == nil {
		r = &seriesRef{labels: e.labels, hash: e.hash}
		ps.refs[e.hash] = r
	}
	r.refs++
	e.ref = r
	return r
}

// build converts a scheduled round into series: the samples of the live
// sandboxes in id order, then one staleness marker for every series sent in
// the previous push round and not in this one. Slices are reused across
// rounds, so building allocates only for new series.
func (ps *pushState) build(states []*sandboxState, ts int64, m *metrics) []prompb.TimeSeries {
	ps.round++
	total := len(ps.candidates)
	for _, st := range states {
		total += len(st.samples)
	}
	if cap(ps.samples) < total {
		ps.samples = make([]prompb.Sample, total)
	}
	ps.samples = ps.samples[:total]
	clear(ps.series)
	ps.series = ps.series[:0]
	add := func(ls []prompb.Label, v float64, t int64) {
		i := len(ps.series)
		ps.samples[i] = prompb.Sample{Value: v, Timestamp: t}
		ps.series = append(ps.series, prompb.TimeSeries{Labels: ls, Samples: ps.samples[i : i+1 : i+1]})
	}
	dropped, dups, stale := 0, 0, 0
	for _, st := range states {
		for _, rec := range st.samples {
			e := rec.e
			if e.dropped {
				dropped++
				continue
			}
			r := e.ref
			if r == nil {
				r = ps.bind(e)
			}
			if r.last == ps.round { // two series made equal by relabelling
				dups++
				continue
			}
			r.last = ps.round
			add(r.labels, rec.v, rec.ts)
		}
		clear(st.samples)
		st.samples = st.samples[:0]
	}
	staleNaN := math.Float64frombits(value.StaleNaN)
	for _, r := range ps.candidates {
		if r.last == ps.round-1 && ps.round > 1 {
			add(r.labels, staleNaN, ts)
			r.last = 0 // once, even if listed twice
			stale++
		}
		if r.refs == 0 && r.last != ps.round && ps.refs[r.hash] == r {
			delete(ps.refs, r.hash)
		}
	}
	clear(ps.candidates)
	ps.candidates = ps.candidates[:0]
	m.relabelDropped.Add(float64(dropped))
	m.duplicates.Add(float64(dups))
	m.stalenessMarks.Add(float64(stale))
	return ps.series
}

// metadata returns the family metadata to send after this round, or nil
// when it is unchanged and was sent less than 10 rounds ago.
func (ps *pushState) metadata(all []*mergedFam) []prompb.MetricMetadata {
	md := make([]prompb.MetricMetadata, 0, len(all))
	for _, mf := range all {
		md = append(md, prompb.MetricMetadata{Type: metadataType(mf.typ), MetricFamilyName: mf.name, Help: mf.help})
	}
	if slices.EqualFunc(md, ps.md, sameMetadata) && ps.round-ps.mdRound < 10 && ps.mdRound != 0 {
		return nil
	}
	ps.md, ps.mdRound = md, ps.round
	return md
}

func sameMetadata(a, b prompb.MetricMetadata) bool {
	return a.Type == b.Type && a.MetricFamilyName == b.MetricFamilyName && a.Help == b.Help && a.Unit == b.Unit
}

func metadataType(t model.MetricType) prompb.MetricMetadata_MetricType {
	switch t {
	case model.MetricTypeCounter:
		return prompb.MetricMetadata_COUNTER
	case model.MetricTypeGauge:
		return prompb.MetricMetadata_GAUGE
	case model.MetricTypeHistogram:
		return prompb.MetricMetadata_HISTOGRAM
	case model.MetricTypeSummary:
		return prompb.MetricMetadata_SUMMARY
	}
	return prompb.MetricMetadata_UNKNOWN
}

// send hands one round to every appender in turn; a failing appender is
// logged and counted and never stops the others.
func (f *Forwarder) send(ctx context.Context, series []prompb.TimeSeries, md []prompb.MetricMetadata) {
	for i, a := range f.deps.Appenders {
		if len(series) > 0 {
			if err := a.Append(ctx, series); err != nil {
				f.m.appenderErrors.Inc()
				f.log.Warn("appender rejected round", "appender", i, "series", len(series), "err", err)
			}
		}
		if md != nil {
			if ma, ok := a.(MetadataAppender); ok {
				ma.AppendMetadata(md)
			}
		}
	}
}
