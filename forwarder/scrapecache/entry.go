package scrapecache

import (
	"sync"
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
	defs     sync.Pool              // *[]famDef, one per parse in flight
	noReplay bool                   // tests: always run the full parser
}

// NewEnv returns an Env. With push, every new series gets its push label
// template: relabel (metric_relabel_configs) applied, then external
// labels (sorted by name) added where the series lacks them.
func NewEnv(push bool, relabel []*relabel.Config, external []labels.Label) *Env {
	return &Env{push: push, strs: newInterner(), relabel: relabel, external: external}
}

// getDefs returns an empty family list for one Parse (a sandbox needs it
// only while it parses: ~5 KiB for the shared exposition's 75 families,
// kept per parse in flight instead of per sandbox); putDefs gives it back.
func (env *Env) getDefs() []famDef {
	if p, _ := env.defs.Get().(*[]famDef); p != nil {
		return (*p)[:0]
	}
	return nil
}

func (env *Env) putDefs(d []famDef) {
	if cap(d) == 0 {
		return
	}
	for i := range d {
		d[i] = famDef{names: d[i].names[:0]} // no family or help kept alive
	}
	env.defs.Put(&d)
}

// Reset drops the interner's tables when they hold more than limit
// strings (or series, or templates): called between rounds, with a bound
// derived from the live series, so churn of high-cardinality values cannot
// grow them without bound. Not concurrent with a Parse.
func (env *Env) Reset(limit int) { env.strs.reset(limit) }

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
