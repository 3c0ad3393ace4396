package forwarder

import (
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/kata-containers/kata-monitor/sources/cri"
)

// SandboxStatus is the outcome of the last scrape of one sandbox.
type SandboxStatus struct {
	// LastScrape is when the scrape started (the forwarder's clock).
	LastScrape time.Time
	// Duration is how long the scrape took (transport only, not parsing).
	Duration time.Duration
	// Err is the scrape or parse error, empty on success.
	Err string
	// Series is the number of series kept from the exposition.
	Series int
}

// sandboxState is everything the forwarder keeps about one sandbox across
// rounds. During a round only the goroutine scraping that sandbox touches it;
// between rounds only the round's sequential phase does.
type sandboxState struct {
	id, socket string
	pod        cri.Pod
	podKnown   bool
	vals       *sbVals // id and pod label values, replaced when the pod changes
	jitter     time.Duration
	round      uint64 // last round that listed this sandbox

	body     []byte            // scrape buffer, reused
	byRaw    map[string]*entry // raw series text (interned) -> entry
	byLabels map[string]*entry // entry.prefix (canonical label set) -> entry
	scratch  []byte            // for rendering a new entry's prefix
	live     int               // distinct valid entries seen this round
	evicted  []*entry          // entries that disappeared, for the push phase
	lb       *labels.Builder
	families map[string]*family // by name as exposed

	curRound uint64
	defs     []famDef // families of this round, in order of appearance

	out     *rendered    // this round's pull lines
	outHint renderedSize // sizes of the previous round's out
	samples []sampleRec  // this round's push samples (scheduled rounds only)
	status  SandboxStatus

	failing, parseFailing bool // log once per streak
}

// famDef is one family of one exposition in one round.
type famDef struct {
	fam       *family
	raw, name string // as exposed, and after renaming
	help      string
	hasHelp   bool
	typ       model.MetricType
	hasType   bool
	locked    bool     // a sample was assigned: later HELP/TYPE lines are ignored
	names     []string // distinct rendered sample names (for the expfmt check)
}

// sampleRec is one sample of a round, for the push phase.
type sampleRec struct {
	e  *entry
	v  float64
	ts int64
}

// rendered is one sandbox's pull exposition of one round: lines grouped in
// spans by family. It is owned by a snapshot and recycled once no reader
// holds that snapshot.
type rendered struct {
	meta  bool // families only (no lines, no spans): pulls are idle
	buf   []byte
	fams  []famMeta
	names []string
	spans []span
}

// renderedSize is the lengths of a rendered's slices, to size the next.
type renderedSize struct{ buf, fams, names, spans int }

type famMeta struct {
	name, help       string
	hasHelp          bool
	typ              model.MetricType
	namesLo, namesHi int
}

type span struct{ fam, start, end int }

func (r *rendered) reset() {
	r.buf, r.fams, r.names, r.spans = r.buf[:0], r.fams[:0], r.names[:0], r.spans[:0]
}

func newSandboxState(id string) *sandboxState {
	return &sandboxState{
		id:       id,
		vals:     newSBVals(id, "", "", ""),
		byRaw:    make(map[string]*entry),
		byLabels: make(map[string]*entry),
		lb:       labels.NewBuilder(labels.EmptyLabels()),
		families: make(map[string]*family),
	}
}

// family is what a sandbox keeps about one family name across rounds, so a
// round neither re-renames nor re-allocates names and unchanged help texts.
type family struct {
	raw, name string // as exposed, and after renaming
	help      string // the last help text seen
	round     uint64 // the round idx belongs to
	idx       int    // index in defs in that round
}

// def returns the index of this round's family named raw, creating it.
func (s *sandboxState) def(raw []byte) int {
	fam := s.families[string(raw)]
	if fam == nil {
		fam = s.newFamily(string(raw))
	}
	return s.defOf(fam)
}

// defName is def for a name that is already a long-lived string.
func (s *sandboxState) defName(name string) int {
	fam := s.families[name]
	if fam == nil {
		fam = s.newFamily(name)
	}
	return s.defOf(fam)
}

func (s *sandboxState) newFamily(raw string) *family {
	out, _ := renamed(raw)
	fam := &family{raw: raw, name: out}
	s.families[raw] = fam
	return fam
}

func (s *sandboxState) defOf(fam *family) int {
	if fam.round == s.curRound {
		return fam.idx
	}
	n := len(s.defs)
	if n < cap(s.defs) {
		s.defs = s.defs[:n+1]
		s.defs[n] = famDef{names: s.defs[n].names[:0]}
	} else {
		s.defs = append(s.defs, famDef{})
	}
	d := &s.defs[n]
	d.fam, d.raw, d.name, d.typ = fam, fam.raw, fam.name, model.MetricTypeUnknown
	fam.round, fam.idx = s.curRound, n
	return n
}

// evictAll forgets every series, e.g. when the scrape failed or the pod
// labels changed; the push phase turns them into staleness markers.
func (s *sandboxState) evictAll() {
	for _, e := range s.byLabels {
		s.evicted = append(s.evicted, e)
	}
	clear(s.byLabels)
	clear(s.byRaw)
	s.live = 0
}

// sweep forgets series not seen in this round.
func (s *sandboxState) sweep(round uint64) {
	for k, e := range s.byRaw {
		if e.seen != round {
			delete(s.byRaw, k)
		}
	}
	for k, e := range s.byLabels {
		if e.seen != round {
			delete(s.byLabels, k)
			s.evicted = append(s.evicted, e)
		}
	}
}

// parseStats are counted per sandbox and added to the metrics once.
type parseStats struct{ duplicates, invalid int }

// parse turns one exposition into pull lines (s.out) and, when collect is
// set, push samples (s.samples). It returns the error that stopped the
// parser early; what was parsed before it is kept.
func (s *sandboxState) parse(env *entryEnv, body []byte, ts int64, round uint64, collect bool, st *parseStats) error {
	s.defs = s.defs[:0]
	s.curRound = round
	s.samples = s.samples[:0]
	s.live = 0
	out := s.out
	cur := -1
	var perr error
	p := textparse.NewPromParser(body, labels.NewSymbolTable(), false)
	for {
		et, err := p.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				perr = err
			}
			break
		}
		switch et {
		case textparse.EntryHelp:
			name, help := p.Help()
			cur = s.def(name)
			if d := &s.defs[cur]; !d.locked && !d.hasHelp {
				if string(help) != d.fam.help {
					d.fam.help = string(help)
				}
				d.help, d.hasHelp = d.fam.help, true
			}
		case textparse.EntryType:
			name, typ := p.Type()
			cur = s.def(name)
			if d := &s.defs[cur]; !d.locked && !d.hasType {
				d.typ, d.hasType = typ, true
			}
		case textparse.EntrySeries:
			raw, tsp, v := p.Series()
			e := s.byRaw[string(raw)]
			if e == nil {
				e = s.newEntry(env, p)
				if !e.invalid {
					if canon, ok := s.byLabels[e.prefix]; ok {
						e = canon // same series, spelled differently
					} else {
						s.byLabels[e.prefix] = e
					}
				}
				s.byRaw[env.strs.bytes(raw)] = e
			}
			if e.invalid {
				e.seen = round
				st.invalid++
				continue
			}
			if e.seen == round {
				st.duplicates++ // keep the first
				continue
			}
			e.seen = round
			s.live++
			di := cur
			if di < 0 || !belongsTo(e.name, s.defs[di].raw) {
				di = s.defName(e.name) // its own (untyped) family
			}
			d := &s.defs[di]
			d.locked = true
			if !out.meta && renderable(d.typ, e, v) {
				s.appendLine(out, di, e, v, tsp)
			}
			if collect {
				t := ts
				if tsp != nil {
					t = *tsp
				}
				s.samples = append(s.samples, sampleRec{e: e, v: v, ts: t})
			}
		}
	}
	if s.live < len(s.byLabels) || len(s.byRaw) != len(s.byLabels) {
		s.sweep(round)
	}
	if len(s.families) > 2*len(s.defs)+16 {
		for k, fam := range s.families {
			if fam.round != round {
				delete(s.families, k)
			}
		}
	}
	for _, d := range s.defs {
		if out.meta && !d.locked {
			continue // as in a pull round: a family without samples has no lines
		}
		lo := len(out.names)
		out.names = append(out.names, d.names...)
		out.fams = append(out.fams, famMeta{name: d.name, help: d.help, hasHelp: d.hasHelp, typ: d.typ,
			namesLo: lo, namesHi: len(out.names)})
	}
	return perr
}

func (s *sandboxState) appendLine(out *rendered, di int, e *entry, v float64, tsp *int64) {
	start := len(out.buf)
	out.buf = append(out.buf, e.prefix...)
	out.buf = appendValue(out.buf, v)
	if tsp != nil {
		out.buf = append(out.buf, ' ')
		out.buf = strconv.AppendInt(out.buf, *tsp, 10)
	}
	out.buf = append(out.buf, '\n')
	if n := len(out.spans); n > 0 && out.spans[n-1].fam == di && out.spans[n-1].end == start {
		out.spans[n-1].end = len(out.buf)
	} else {
		out.spans = append(out.spans, span{fam: di, start: start, end: len(out.buf)})
	}
	d := &s.defs[di]
	for _, n := range d.names {
		if n == e.outName {
			return
		}
	}
	d.names = append(d.names, e.outName)
}

// renderable reports whether expfmt would accept the sample inside a family
// of type t: histograms need float "le" values and non-negative counts,
// summaries float "quantile" values. Such samples are still pushed.
func renderable(t model.MetricType, e *entry, v float64) bool {
	switch t {
	case model.MetricTypeHistogram:
		if e.badLE {
			return false
		}
		if v < 0 && (hasSuffix(e.name, "_count") || (e.hasLE && !hasSuffix(e.name, "_sum"))) {
			return false
		}
	case model.MetricTypeSummary:
		return !e.badQuantile
	}
	return true
}
