package scrapecache

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache/layout"
	"github.com/kata-containers/kata-monitor/sources/shim"
)

// Stats are what one Parse left out, by reason (exposition.DropReason):
// the same series twice (the first is kept), invalid names or values, and
// lines the text format cannot carry under their family's type (pushed
// all the same).
type Stats struct{ Duplicates, Invalid, Unrenderable int }

// parsing is the state of one Parse.
type parsing struct {
	s       *Sandbox
	env     *Env
	out     *exposition.Lines
	collect bool
	r       uint32 // the round, truncated as Entry.seen is
	cur     int    // the family of the last HELP/TYPE line, -1: none
	stats   Stats
	rec     layout.Recorder
}

// Parse reads one exposition of round (in the format contentType names,
// see CheckFormat) into the cache: pull lines into out (only families when
// out.Meta) and, when collect is set, push samples (Samples). It returns
// what it left out, and the error that stopped the parser early; what was
// parsed before it is kept. A series not seen in this round is forgotten
// (TakeEvicted hands it to the push phase). An exposition that matches the
// last one but for its values is replayed without the lexer (package layout),
// with the same result.
func (s *Sandbox) Parse(env *Env, body []byte, contentType string, round uint64, collect bool, out *exposition.Lines) (Stats, error) {
	s.defs, s.defIdx = env.getDefs()
	defer func() {
		env.putDefs(s.defs, s.defIdx)
		s.defs, s.defIdx = nil, nil
	}()
	s.samples, s.tss = s.samples[:0], s.tss[:0]
	if collect && s.samples == nil && s.nSamples > 0 {
		s.samples = newSamples(s.nSamples)
	}
	s.live, s.seen = 0, 0
	ps := &parsing{s: s, env: env, out: out, collect: collect, r: uint32(round), cur: -1}
	om, err := isOpenMetrics(contentType)
	if err != nil {
		return ps.stats, err
	}
	s.replayed = !om && ps.replay(body)
	if s.replayed {
		s.finish(env, round, out)
		s.dropMaps()
		return ps.stats, nil
	}
	s.ensureMaps() // before the recorder reuses s.idx
	perr := ps.full(body, contentType, !om && !env.noReplay)
	compacted := s.finish(env, round, out)
	s.layout = nil
	if text, steps, idx, ok := ps.rec.Finish(); ok && perr == nil && !compacted {
		s.layout, s.idx = env.layouts.Intern(text, steps), idx
		if identity(idx) {
			s.idx = nil // entryAt: step k's entry is k
		}
	}
	s.dropMaps()
	s.fit()
	return ps.stats, perr
}

// fit reallocates the per-series slices that appending left more than an
// eighth too big (a new sandbox's grow by doubling: up to half unused, for
// as long as the sandbox lives). Only after a full parse: a replay
// appends exactly what the last round did.
func (s *Sandbox) fit() {
	s.entries = fitted(s.entries)
	s.samples = fitted(s.samples)
	s.idx = fitted(s.idx)
}

// identity reports whether idx[k] == k for every k: the common case (a
// sandbox's entries are added in exposition order), kept as a nil idx.
func identity(idx []int32) bool {
	for k, i := range idx {
		if i != int32(k) {
			return false
		}
	}
	return true
}

func fitted[E any](v []E) []E {
	if cap(v) <= len(v)+len(v)/8+16 {
		return v
	}
	return append(make([]E, 0, len(v)), v...)
}

// full runs the full parser over body, recording its layout when record.
func (ps *parsing) full(body []byte, contentType string, record bool) error {
	p, err := newParser(body, contentType)
	if err != nil {
		return err
	}
	if record {
		ps.rec.Start(body, ps.s.idx)
	}
	for {
		et, err := p.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return err
			}
			return nil
		}
		switch et {
		case textparse.EntryHelp:
			name, help := p.Help()
			ps.cur = ps.s.def(ps.env, name)
			if d := &ps.s.defs[ps.cur]; !d.locked && !d.hasHelp {
				ps.setHelp(ps.env.strs.bytes(help)) // every sandbox has the same
			}
			if ps.rec.OK() {
				ps.rec.Meta(layout.Step{Kind: layout.StepHelp, Name: ps.env.strs.bytes(name), Help: ps.env.strs.bytes(help)}, name)
			}
		case textparse.EntryType:
			name, typ := p.Type()
			ps.cur = ps.s.def(ps.env, name)
			ps.setType(typ)
			if ps.rec.OK() {
				ps.rec.Meta(layout.Step{Kind: layout.StepType, Name: ps.env.strs.bytes(name), Typ: typ}, name)
			}
		case textparse.EntrySeries:
			raw, tsp, v := p.Series()
			idx := ps.lookup(p, raw)
			if ps.rec.OK() {
				ps.rec.Series(raw, idx)
			}
			ps.sample(idx, v, tsp)
		case textparse.EntryComment:
		default:
			ps.rec.Fail()
		}
	}
}

// replay applies the sandbox's layout to body when body matches it (see
// package layout), and reports whether it did.
func (ps *parsing) replay(body []byte) bool {
	s, l := ps.s, ps.s.layout
	if l == nil || ps.env.noReplay {
		return false
	}
	vals := ps.env.layouts.GetVals()
	defer ps.env.layouts.PutVals(vals)
	if !l.Match(body, vals) {
		return false
	}
	k := 0
	for i := range l.Steps {
		switch st := &l.Steps[i]; st.Kind {
		case layout.StepHelp:
			ps.cur = s.defName(ps.env, st.Name)
			ps.setHelp(st.Help)
		case layout.StepType:
			ps.cur = s.defName(ps.env, st.Name)
			ps.setType(st.Typ)
		case layout.StepSeries:
			var tsp *int64
			if vals.TS[k] >= 0 {
				tsp = &vals.TS[k]
			}
			ps.sample(s.entryAt(k), vals.V[k], tsp)
			k++
		}
	}
	return true
}

// setHelp gives the current family its help text unless a sample or an
// earlier HELP fixed it; help is long-lived.
func (ps *parsing) setHelp(help string) {
	if d := &ps.s.defs[ps.cur]; !d.locked && !d.hasHelp {
		d.help, d.hasHelp = help, true
	}
}

// setType gives the current family its type, as setHelp does.
func (ps *parsing) setType(typ model.MetricType) {
	if d := &ps.s.defs[ps.cur]; !d.locked && !d.hasType {
		d.typ, d.hasType = typ, true
	}
}

// lookup returns the entry of the series the parser is on, whose text is
// raw, building it the first time.
func (ps *parsing) lookup(p textparse.Parser, raw []byte) int32 {
	s := ps.s
	idx, ok := s.byRaw[string(raw)]
	if !ok {
		idx = s.add(s.newEntry(ps.env, p))
		s.byRaw[ps.env.strs.bytes(raw)] = idx
		s.spells++
	}
	return idx
}

// sample takes a sample of entry idx: drops invalid and repeated series,
// and records the pull line and the push sample.
func (ps *parsing) sample(idx int32, v float64, tsp *int64) {
	s := ps.s
	e := &s.entries[idx]
	switch {
	case e.Info == invalid:
		if e.seen != ps.r {
			e.seen = ps.r
			s.seen++
		}
		ps.stats.Invalid++
		return
	case e.seen == ps.r:
		ps.stats.Duplicates++ // keep the first
		return
	}
	e.seen = ps.r
	s.live++
	s.seen++
	in := e.Info
	di := ps.cur
	if di < 0 || !belongsTo(in.Name, s.defs[di].fam.raw) {
		di = s.defName(ps.env, in.Name) // its own (untyped) family
	}
	d := &s.defs[di]
	d.locked = true
	if !ps.out.Meta {
		if exposition.Renderable(d.typ, in, v) {
			ps.out.Append(di, in, v, tsp)
			d.addName(in)
		} else {
			ps.stats.Unrenderable++
		}
	}
	if ps.collect {
		ti := int32(-1)
		if tsp != nil {
			ti = int32(len(s.tss))
			s.tss = append(s.tss, *tsp)
		}
		s.samples = append(s.samples, Sample{Value: v, Entry: idx, TS: ti})
	}
}

// addName notes a line of series in in the family: its quoting and its
// sample name.
func (d *famDef) addName(in *exposition.Series) {
	if in.UTF8 {
		d.utf8 = true
	}
	for _, n := range d.names {
		if n == in.OutName {
			return
		}
	}
	d.names = append(d.names, in.OutName)
}

// finish ends a Parse: forgets the series and families the round did not
// show and hands the round's families to out, in order of appearance. It
// reports whether the entries were renumbered (compact).
func (s *Sandbox) finish(env *Env, round uint64, out *exposition.Lines) bool {
	compacted := false
	if s.seen < len(s.entries)-len(s.free) {
		compacted = s.sweep(round)
	}
	b, _ := env.famb.Get().(*exposition.FamiliesBuilder)
	if b == nil {
		b = &exposition.FamiliesBuilder{}
	}
	b.Reset()
	for _, d := range s.defs {
		if out.Meta && !d.locked {
			continue // as in a pull round: a family without samples has no lines
		}
		b.Add(exposition.FamilyMeta{Name: d.fam.name, Help: d.help, HasHelp: d.hasHelp, UTF8: d.utf8, Type: d.typ}, d.names)
	}
	s.fams = env.fams.Intern(b, s.fams)
	env.famb.Put(b)
	out.SetFamilies(s.fams)
	if !out.Meta {
		s.shape = out.Finish(&env.shapes, s.shape)
	}
	return compacted
}

// errFormat is wrapped by the error for an exposition in a format the
// scrape did not ask for.
var errFormat = errors.New("unsupported exposition format")

// newParser picks the parser by the answer's Content-Type, as Prometheus's
// scrape does (textparse.New): the text format (also when the shim sent no
// Content-Type, as upstream kata-monitor assumes) or OpenMetrics 1.0
// (exemplars are ignored; _created lines are series, as Prometheus ingests
// them without the created-timestamps feature). Anything else, e.g. the
// protobuf format nobody asked for, is an error wrapping errFormat.
func newParser(body []byte, contentType string) (textparse.Parser, error) {
	om, err := isOpenMetrics(contentType)
	switch {
	case err != nil:
		return nil, err
	case om:
		return textparse.NewOpenMetricsParser(body, labels.NewSymbolTable()), nil
	}
	return textparse.NewPromParser(body, labels.NewSymbolTable(), false), nil
}

// CheckFormat returns an error when contentType names an exposition format
// Parse cannot read (Parse would return the same error).
func CheckFormat(contentType string) error {
	_, err := isOpenMetrics(contentType)
	return err
}

// isOpenMetrics tells the two formats newParser reads apart, and refuses
// the others.
func isOpenMetrics(contentType string) (bool, error) {
	mt, _, _ := strings.Cut(contentType, ";")
	switch mt = strings.TrimSpace(mt); {
	case mt == "" || strings.EqualFold(mt, "text/plain"):
		return false, nil
	case strings.EqualFold(mt, "application/openmetrics-text"):
		return true, nil
	}
	return false, fmt.Errorf("%w: Content-Type %q", errFormat, shim.Printable(contentType))
}

// belongsTo is the family rule of the text format: a sample is part of the
// current family when its name is the family's, or the family's plus one of
// the suffixes client libraries add.
func belongsTo(sample, family string) bool {
	if sample == family {
		return true
	}
	if len(sample) <= len(family) || sample[:len(family)] != family {
		return false
	}
	switch sample[len(family):] {
	case "_bucket", "_sum", "_count", "_total", "_created", "_info":
		return true
	}
	return false
}

// renamed applies upstream's rule: the shim's own Go client families go_*
// and process_* become kata_shim_go_* and kata_shim_process_* so they do not
// clash with kata-monitor's.
func renamed(name string) (string, bool) {
	if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
		return "kata_shim_" + name, true
	}
	return name, false
}

// shimSpelling returns the labels to render for pull, and the canonical
// head when they differ from ls ("" otherwise). textparse rewrites "le" in
// histograms and "quantile" in summaries to Prometheus 3's float spelling
// (le="1" becomes le="1.0"); pull serves what the shim served, as upstream
// kata-monitor does, so a Prometheus 2 keeps its series identity. raw is
// the series text as the parser returned it; it is parsed again without a
// TYPE line, which keeps the values as written. Costs nothing for series
// without le or quantile; runs only when a series is first seen.
func shimSpelling(raw []byte, outName string, ls labels.Labels) (labels.Labels, string) {
	le, q := ls.Get(model.BucketLabel), ls.Get(model.QuantileLabel)
	if le == "" && q == "" {
		return ls, ""
	}
	line := make([]byte, 0, len(raw)+3)
	line = append(append(line, raw...), " 0\n"...)
	p := textparse.NewPromParser(line, labels.NewSymbolTable(), false)
	if et, err := p.Next(); err != nil || et != textparse.EntrySeries {
		return ls, ""
	}
	var shim labels.Labels
	p.Labels(&shim)
	if shim.Len() != ls.Len() || (shim.Get(model.BucketLabel) == le && shim.Get(model.QuantileLabel) == q) {
		return ls, ""
	}
	return shim, string(exposition.RenderHead(nil, outName, ls))
}
