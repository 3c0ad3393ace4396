package forwarder

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/sources/shim"
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
	// Dropped counts the round's samples of this sandbox that were left
	// out, by reason (duplicate, invalid, invalid_for_type, type_conflict,
	// name_clash; see kata_monitor_series_dropped_total); nil when none.
	Dropped map[string]int
}

// sandboxState is everything the forwarder keeps about one sandbox across
// rounds. During a round only the goroutine scraping that sandbox touches it;
// between rounds only the round's sequential phase does.
type sandboxState struct {
	id, socket string
	root       string // the sandbox root holding its directory
	pod        cri.Pod
	podKnown   bool
	vals       *sbVals // id and pod label values, replaced when the pod changes
	labels     string  // the pull rendering of vals (renderSandboxLabels)
	jitter     time.Duration
	round      uint64 // last round that listed this sandbox

	entries  []entry          // the sandbox's series; free slots have no info
	free     []int32          // free slots of entries
	byRaw    map[string]int32 // raw series text (interned) -> entry
	byInfo   map[string]int32 // seriesInfo.canon (the canonical series) -> entry
	scratch  []byte           // for rendering a new entry's head
	live     int              // distinct valid entries seen this round
	evicted  []gone           // pushable series that disappeared, for the push phase
	lb       *labels.Builder
	families map[string]*family // by name as exposed

	curRound uint64
	defs     []famDef // families of this round, in order of appearance

	out     *rendered    // this round's pull lines
	outHint renderedSize // sizes of the previous round's out
	samples []sampleRec  // this round's push samples (scheduled rounds only)
	tss     []int64      // timestamps given by the exposition, this round
	status  SandboxStatus

	failing, parseFailing bool       // log once per streak
	scrapeErr             error      // this round's scrape error, judged after the round
	drops                 dropCounts // this round's samples left out at parse
	dropLogged            uint16     // reasons already logged (bit per dropReason)
	format                string     // Content-Type of this round's exposition
}

// gone is a series that disappeared, with what its staleness marker needs.
type gone struct {
	tmpl *labelTmpl
	vals *sbVals
	hash uint64
	sent uint32 // the last push round that sent it (truncated)
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
	utf8      bool     // a line's name or label name needs quoting
	names     []string // distinct rendered sample names (for the expfmt check)
}

// sampleRec is one sample of a round, for the push phase: 16 bytes.
type sampleRec struct {
	v  float64
	e  int32 // index in sandboxState.entries
	ts int32 // index in sandboxState.tss of its own timestamp, or -1: the round's
}

// rendered is one sandbox's pull exposition of one round: lines grouped in
// spans by family. A line is kept as its series' shared info (the head) and
// its value: the sandbox's labels are written between the two when the
// exposition is served, so a round holds ~20 bytes per line instead of the
// ~190 of a rendered line. It is owned by a snapshot and recycled once no
// reader holds that snapshot.
type rendered struct {
	meta   bool   // families only (no lines, no spans): pulls are idle
	labels string // the sandbox's labels, rendered
	infos  []*seriesInfo
	buf    []byte // per line: value [timestamp] newline
	fams   []famMeta
	names  []string
	spans  []span
}

// renderedSize is the lengths of a rendered's slices, to size the next.
type renderedSize struct{ lines, buf, fams, names, spans int }

type famMeta struct {
	name, help       string
	hasHelp, utf8    bool
	typ              model.MetricType
	namesLo, namesHi int
}

// span is lines [lo, hi) of one family; start is the offset of line lo's
// value in buf.
type span struct{ fam, lo, hi, start int }

func (r *rendered) reset() {
	clear(r.infos)
	r.infos, r.buf, r.fams, r.names, r.spans = r.infos[:0], r.buf[:0], r.fams[:0], r.names[:0], r.spans[:0]
}

func newSandboxState(id string) *sandboxState {
	vals := newSBVals(id, "", "", "")
	return &sandboxState{
		id:       id,
		vals:     vals,
		labels:   renderSandboxLabels(vals, false),
		byRaw:    make(map[string]int32),
		byInfo:   make(map[string]int32),
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
func (s *sandboxState) def(env *entryEnv, raw []byte) int {
	fam := s.families[string(raw)]
	if fam == nil {
		fam = s.newFamily(env, env.strs.bytes(raw))
	}
	return s.defOf(fam)
}

// defName is def for a name that is already a long-lived string.
func (s *sandboxState) defName(env *entryEnv, name string) int {
	fam := s.families[name]
	if fam == nil {
		fam = s.newFamily(env, name)
	}
	return s.defOf(fam)
}

func (s *sandboxState) newFamily(env *entryEnv, raw string) *family {
	out := raw
	if r, ok := renamed(raw); ok {
		out = env.strs.str(r)
	}
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

// setPod gives the sandbox its pod's labels. Every series changes labels:
// all are forgotten (the push phase turns them into staleness markers).
func (s *sandboxState) setPod(pod cri.Pod) {
	s.evictAll()
	s.pod, s.podKnown = pod, true
	s.vals = newSBVals(s.id, pod.UID, pod.Name, pod.Namespace)
	s.labels = renderSandboxLabels(s.vals, true)
}

// evictAll forgets every series, e.g. when the scrape failed or the pod
// labels changed; the push phase turns them into staleness markers.
func (s *sandboxState) evictAll() {
	for i := range s.entries {
		if e := &s.entries[i]; e.info != nil {
			s.evict(e)
		}
	}
	clear(s.entries)
	s.entries, s.free = s.entries[:0], s.free[:0]
	clear(s.byInfo)
	clear(s.byRaw)
	s.live = 0
}

// evict records a series that disappeared for its staleness marker.
func (s *sandboxState) evict(e *entry) {
	if e.tmpl != nil {
		s.evicted = append(s.evicted, gone{tmpl: e.tmpl, vals: s.vals, hash: e.hash, sent: e.sent})
	}
}

// add stores the entry of a series seen for the first time under this
// spelling and returns its index: an existing entry when it is the same
// series spelled differently.
func (s *sandboxState) add(e entry) int32 {
	if e.info != invalidInfo {
		if i, ok := s.byInfo[e.info.canon]; ok {
			return i
		}
	}
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
		s.entries[i] = e
	} else {
		i = int32(len(s.entries))
		s.entries = append(s.entries, e)
	}
	if e.info != invalidInfo {
		s.byInfo[e.info.canon] = i
	}
	return i
}

// sweep forgets series not seen in this round, and compacts entries when
// most of it is free (a sandbox whose series set shrank for good).
func (s *sandboxState) sweep(round uint64) {
	r := uint32(round)
	for k, i := range s.byRaw {
		if s.entries[i].seen != r {
			delete(s.byRaw, k)
		}
	}
	for i := range s.entries {
		e := &s.entries[i]
		if e.info == nil || e.seen == r {
			continue
		}
		if e.info != invalidInfo {
			delete(s.byInfo, e.info.canon)
			s.evict(e)
		}
		*e = entry{}
		s.free = append(s.free, int32(i))
	}
	if len(s.entries) > 1024 && len(s.free) > len(s.entries)/2 {
		s.compact()
	}
}

// compact moves the used entries to the front of a right-sized slice,
// renumbering the maps and this round's samples.
func (s *sandboxState) compact() {
	moved := make(map[int32]int32, len(s.entries)-len(s.free))
	entries := make([]entry, 0, len(s.entries)-len(s.free))
	for i, e := range s.entries {
		if e.info != nil {
			moved[int32(i)] = int32(len(entries))
			entries = append(entries, e)
		}
	}
	for k, i := range s.byRaw {
		s.byRaw[k] = moved[i]
	}
	for k, i := range s.byInfo {
		s.byInfo[k] = moved[i]
	}
	for i := range s.samples {
		s.samples[i].e = moved[s.samples[i].e]
	}
	s.entries, s.free = entries, nil
}

// parseStats are counted per sandbox and added to the metrics once.
type parseStats struct{ duplicates, invalid, unrenderable int }

// parse turns one exposition (in the format s.format names) into pull
// lines (s.out) and, when collect is set, push samples (s.samples). It
// returns the error that stopped the parser early; what was parsed before
// it is kept.
func (s *sandboxState) parse(env *entryEnv, body []byte, round uint64, collect bool, st *parseStats) error {
	s.defs = s.defs[:0]
	s.curRound = round
	r := uint32(round)
	s.samples, s.tss = s.samples[:0], s.tss[:0]
	s.live = 0
	out := s.out
	cur := -1
	var perr error
	p, err := newParser(body, s.format)
	if err != nil {
		return err
	}
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
			cur = s.def(env, name)
			if d := &s.defs[cur]; !d.locked && !d.hasHelp {
				if string(help) != d.fam.help {
					d.fam.help = env.strs.bytes(help) // every sandbox has the same
				}
				d.help, d.hasHelp = d.fam.help, true
			}
		case textparse.EntryType:
			name, typ := p.Type()
			cur = s.def(env, name)
			if d := &s.defs[cur]; !d.locked && !d.hasType {
				d.typ, d.hasType = typ, true
			}
		case textparse.EntrySeries:
			raw, tsp, v := p.Series()
			idx, ok := s.byRaw[string(raw)]
			if !ok {
				idx = s.add(s.newEntry(env, p))
				s.byRaw[env.strs.bytes(raw)] = idx
			}
			e := &s.entries[idx]
			if e.info == invalidInfo {
				e.seen = r
				st.invalid++
				continue
			}
			if e.seen == r {
				st.duplicates++ // keep the first
				continue
			}
			e.seen = r
			s.live++
			in := e.info
			di := cur
			if di < 0 || !belongsTo(in.name, s.defs[di].raw) {
				di = s.defName(env, in.name) // its own (untyped) family
			}
			d := &s.defs[di]
			d.locked = true
			if !out.meta {
				if renderable(d.typ, in, v) {
					s.appendLine(out, di, in, v, tsp)
				} else {
					st.unrenderable++
				}
			}
			if collect {
				ti := int32(-1)
				if tsp != nil {
					ti = int32(len(s.tss))
					s.tss = append(s.tss, *tsp)
				}
				s.samples = append(s.samples, sampleRec{v: v, e: idx, ts: ti})
			}
		}
	}
	if s.live < len(s.byInfo) || len(s.byRaw) != len(s.byInfo) {
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
		out.fams = append(out.fams, famMeta{name: d.name, help: d.help, hasHelp: d.hasHelp, utf8: d.utf8, typ: d.typ,
			namesLo: lo, namesHi: len(out.names)})
	}
	return perr
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

func (s *sandboxState) appendLine(out *rendered, di int, in *seriesInfo, v float64, tsp *int64) {
	start, line := len(out.buf), len(out.infos)
	out.infos = append(out.infos, in)
	out.buf = appendValue(out.buf, v)
	if tsp != nil {
		out.buf = append(out.buf, ' ')
		out.buf = strconv.AppendInt(out.buf, *tsp, 10)
	}
	out.buf = append(out.buf, '\n')
	if n := len(out.spans); n > 0 && out.spans[n-1].fam == di && out.spans[n-1].hi == line {
		out.spans[n-1].hi++
	} else {
		out.spans = append(out.spans, span{fam: di, lo: line, hi: line + 1, start: start})
	}
	d := &s.defs[di]
	if in.utf8 {
		d.utf8 = true
	}
	for _, n := range d.names {
		if n == in.outName {
			return
		}
	}
	d.names = append(d.names, in.outName)
}

// renderable reports whether expfmt would accept the sample inside a family
// of type t: histograms need float "le" values and non-negative counts,
// summaries float "quantile" values. Such samples are still pushed.
func renderable(t model.MetricType, e *seriesInfo, v float64) bool {
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
