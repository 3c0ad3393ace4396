package scrapecache

import (
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache/layout"
)

// invalid marks a series dropped every round (bad names, non-UTF-8 values,
// duplicate label names).
var invalid = &exposition.Series{}

// Entry is one series of one sandbox, what a round needs besides the shared
// exposition.Series: built when the series first appears and reused until
// it disappears, so a round costs a map lookup per sample. Entries live in
// a slice of the Sandbox (no pointer per series for the GC to chase): 32
// bytes each.
type Entry struct {
	// Info is the series' shared part (names, pull head). Read-only.
	Info *exposition.Series
	// Tmpl is the final push label set (sorted, __name__ included) with
	// the sandbox's values as slots, shared by all sandboxes; nil when
	// pushing is off or metric_relabel_configs dropped the series.
	// Read-only.
	Tmpl *Template
	// Hash is the hash of the final push label set. Read-only.
	Hash uint64
	// Round numbers truncated to 32 bits (wrapping takes over a century of
	// one-second rounds): the last round in which the sandbox exposed the
	// series (the cache's), and the last push round that sent a sample of
	// it (the push phase's, which sets it).
	seen uint32
	Sent uint32
}

// Env is what building entries needs besides the sandbox, shared by all
// sandboxes: whether push labels are built, the relabelling and external
// labels, and the interner. Build it with NewEnv; safe for concurrent use
// by the sandboxes' parses, Reset excepted.
type Env struct {
	push     bool
	strs     *interner // shared strings and infos of all sandboxes
	relabel  []*relabel.Config
	external []labels.Label         // sorted by name
	layouts  layout.Table           // shared layouts of the replay path
	fams     exposition.FamilyTable // shared family sets of pull lines
	shapes   exposition.ShapeTable  // shared series and runs of pull lines
	famb     sync.Pool              // *exposition.FamiliesBuilder, one per parse in flight
	defs     sync.Pool              // *defScratch, one per parse in flight
	// families is every family name seen (raw -> *family), shared by all
	// sandboxes: read by every parse, written when a name is new.
	families  sync.Map
	nfamilies atomic.Int64
	noReplay  bool // tests: always run the full parser
}

// NewEnv returns an Env. With push, every new series gets its push label
// template: relabel (metric_relabel_configs) applied, then external
// labels (sorted by name) added where the series lacks them.
func NewEnv(push bool, relabel []*relabel.Config, external []labels.Label) *Env {
	return &Env{push: push, strs: newInterner(), relabel: relabel, external: external}
}

// defScratch is a Parse's family list and its index by name (Sandbox.defs,
// Sandbox.defIdx): a sandbox needs them only while it parses (~10 KiB for
// the shared exposition's 75 families), so they are kept per parse in
// flight instead of per sandbox.
type defScratch struct {
	defs []famDef
	idx  map[string]int
}

// getDefs returns an empty family list and index for one Parse; putDefs
// gives them back.
func (env *Env) getDefs() ([]famDef, map[string]int) {
	if p, _ := env.defs.Get().(*defScratch); p != nil {
		return p.defs[:0], p.idx
	}
	return nil, make(map[string]int)
}

func (env *Env) putDefs(d []famDef, idx map[string]int) {
	for i := range d {
		d[i] = famDef{names: d[i].names[:0]} // no family or help kept alive
	}
	if len(idx) > 4096 { // a Go map never shrinks: no huge one kept
		return
	}
	clear(idx)
	env.defs.Put(&defScratch{defs: d, idx: idx})
}

// family returns the shared family named raw (as exposed), adding it if
// new; raw must be long-lived (interned).
func (env *Env) family(raw string) *family {
	if f, ok := env.families.Load(raw); ok {
		return f.(*family)
	}
	out := raw
	if r, ok := renamed(raw); ok {
		out = env.strs.str(r)
	}
	f, loaded := env.families.LoadOrStore(raw, &family{raw: raw, name: out})
	if !loaded {
		env.nfamilies.Add(1)
	}
	return f.(*family)
}

// Reset drops the interner's tables when they hold more than limit
// strings (or series, or templates): called between rounds, with a bound
// derived from the live series, so churn of high-cardinality values cannot
// grow them without bound. Not concurrent with a Parse.
func (env *Env) Reset(limit int) {
	env.strs.reset(limit)
	if env.nfamilies.Load() > int64(limit) {
		env.families.Clear()
		env.nfamilies.Store(0)
	}
}

// newEntry builds the entry for the series the parser is positioned on.
func (s *Sandbox) newEntry(env *Env, p textparse.Parser) Entry {
	var ls labels.Labels
	p.Labels(&ls)
	if !validLabels(ls) {
		return Entry{Info: invalid}
	}
	name := ls.Get(model.MetricNameLabel)
	outName, ok := renamed(name)
	if !ok {
		outName = name
	}
	// Pull serves the shim's spelling; push and identity use textparse's.
	raw, _, _ := p.Series()
	pls, canon := shimSpelling(raw, outName, ls)
	s.scratch = exposition.RenderHead(s.scratch[:0], outName, pls)
	e := Entry{Info: env.strs.info(name, outName, s.scratch, canon, pls)}
	if env.push {
		e.Tmpl, e.Hash = s.pushLabels(env, outName, ls)
	}
	return e
}

// pushLabels enriches ls with the sandbox and pod labels, applies
// metric_relabel_configs and external labels, and returns the result as a
// template shared by every sandbox exposing the same series, with its
// hash; a nil template when relabelling dropped the series.
func (s *Sandbox) pushLabels(env *Env, outName string, ls labels.Labels) (*Template, uint64) {
	lb := s.lb
	lb.Reset(ls)
	ls.Range(func(l labels.Label) {
		if l.Value == "" { // an empty label is an absent label
			lb.Del(l.Name)
		}
	})
	lb.Set(model.MetricNameLabel, outName)
	lb.Set(exposition.LabelSandboxID, s.id)
	if s.podKnown {
		lb.Set(exposition.LabelCRIUID, s.pod.UID)
		lb.Set(exposition.LabelCRIName, s.pod.Name)
		lb.Set(exposition.LabelCRINamespace, s.pod.Namespace)
	} else { // ours win: a shim cannot claim a pod we do not know
		lb.Del(exposition.LabelCRIUID, exposition.LabelCRIName, exposition.LabelCRINamespace)
	}
	if !relabel.ProcessBuilder(lb, env.relabel...) || lb.Get(model.MetricNameLabel) == "" {
		return nil, 0
	}
	for _, l := range env.external {
		if lb.Get(l.Name) == "" {
			lb.Set(l.Name, l.Value)
		}
	}
	out := lb.Labels()
	return env.strs.template(out, s.vals), out.Hash()
}

// validLabels rejects what receivers and expfmt would reject: empty or
// non-UTF-8 names, non-UTF-8 values, a label name given twice.
func validLabels(ls labels.Labels) bool {
	if _, dup := ls.HasDuplicateLabelNames(); dup {
		return false
	}
	ok := ls.Get(model.MetricNameLabel) != ""
	ls.Range(func(l labels.Label) {
		if l.Name == "" || !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			ok = false
		}
	})
	return ok
}
