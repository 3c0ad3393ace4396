package forwarder

import (
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"
)

// Labels kata-monitor adds to every shim series (upstream's names).
const (
	labelSandboxID    = "sandbox_id"
	labelCRIUID       = "cri_uid"
	labelCRIName      = "cri_name"
	labelCRINamespace = "cri_namespace"
)

// ours reports whether name is one of the labels kata-monitor sets: a
// shim's own value for it is never kept.
func ours(name string) bool {
	switch name {
	case labelSandboxID, labelCRIUID, labelCRIName, labelCRINamespace:
		return true
	}
	return false
}

// seriesInfo is what does not depend on the sandbox exposing a series:
// every shim exposes the same ~760 series, so at 200 sandboxes ~150k
// entries share ~760 of these (interned) instead of each carrying its own
// rendered names and labels. Immutable once built.
type seriesInfo struct {
	// name is the metric name as the shim exposed it (family membership is
	// decided on the shim's names); outName is the name after renaming.
	name, outName string
	// key identifies the series by content (head, then name): two infos
	// with equal keys are the same series, also across an interner reset.
	key string
	// canon is key with "le" and "quantile" as Prometheus 3 spells them
	// (the same string as key unless the shim spelled them otherwise): two
	// spellings of one series are one series (and one push series).
	canon string
	// head is the pull line up to the sandbox's labels, escaped:
	// `name{l1="v1",l2="v2",` (`name{` without shim labels, `{"name",...,`
	// for a name the legacy charset cannot spell). A line is head, the
	// sandbox's labels, `} ` and the value.
	head string
	// le/quantile present and whether expfmt would accept them as floats.
	hasLE, badLE, hasQuantile, badQuantile bool
	// utf8 is set when the name or a label name is outside the legacy
	// charset (the head quotes it); quoted then holds the labels the head
	// was rendered from, to render it escaped for clients that cannot read
	// UTF-8 names (escapedHead).
	utf8   bool
	quoted labels.Labels
}

// invalidInfo marks a series dropped every round (bad names, non-UTF-8
// values, duplicate label names).
var invalidInfo = &seriesInfo{}

// entry is one series of one sandbox, what a round needs besides the shared
// seriesInfo: built when the series first appears and reused until it
// disappears, so a round costs a map lookup per sample. Entries live in
// sandboxState.entries (no pointer per series for the GC to chase): 32
// bytes each.
type entry struct {
	info *seriesInfo // nil: a free slot
	// tmpl is the final push label set (sorted, __name__ included) with
	// the sandbox's values as slots, shared by all sandboxes; nil when
	// pushing is off or metric_relabel_configs dropped the series.
	tmpl *labelTmpl
	hash uint64 // of the final push label set
	// Round numbers truncated to 32 bits (wrapping takes over a century of
	// one-second rounds): the last round in which the sandbox exposed the
	// series, and the last push round that sent a sample of it.
	seen, sent uint32
}

// entryEnv is what building an entry needs from the forwarder; immutable.
type entryEnv struct {
	push     bool
	strs     *interner // shared strings and infos of all sandboxes; may be nil
	relabel  []*relabel.Config
	external []labels.Label // sorted by name
}

// newEntry builds the entry for the series the parser is positioned on.
func (s *sandboxState) newEntry(env *entryEnv, p textparse.Parser) entry {
	var ls labels.Labels
	p.Labels(&ls)
	if !validLabels(ls) {
		return entry{info: invalidInfo}
	}
	name := ls.Get(model.MetricNameLabel)
	outName, ok := renamed(name)
	if !ok {
		outName = name
	}
	// Pull serves the shim's spelling; push and identity use textparse's.
	raw, _, _ := p.Series()
	pls, canon := shimSpelling(raw, outName, ls)
	s.scratch = renderHead(s.scratch[:0], outName, pls)
	e := entry{info: env.strs.info(name, outName, s.scratch, canon, pls)}
	if env.push {
		e.tmpl, e.hash = s.pushLabels(env, outName, ls)
	}
	return e
}

// newInfo builds the seriesInfo of ls with the rendered head.
func newInfo(name, outName, key string, headLen int, ls labels.Labels) *seriesInfo {
	in := &seriesInfo{name: name, outName: outName, key: key, head: key[:headLen]}
	if needsQuotes(outName, ls) {
		in.utf8, in.quoted = true, ls
	}
	if v := ls.Get(model.BucketLabel); v != "" {
		in.hasLE, in.badLE = true, !isTextFloat(v)
	}
	if v := ls.Get(model.QuantileLabel); v != "" {
		in.hasQuantile, in.badQuantile = true, !isTextFloat(v)
	}
	return in
}

// pushLabels enriches ls with the sandbox and pod labels, applies
// metric_relabel_configs and external labels, and returns the result as a
// template shared by every sandbox exposing the same series, with its
// hash; a nil template when relabelling dropped the series.
func (s *sandboxState) pushLabels(env *entryEnv, outName string, ls labels.Labels) (*labelTmpl, uint64) {
	lb := s.lb
	lb.Reset(ls)
	ls.Range(func(l labels.Label) {
		if l.Value == "" { // an empty label is an absent label
			lb.Del(l.Name)
		}
	})
	lb.Set(model.MetricNameLabel, outName)
	lb.Set(labelSandboxID, s.id)
	if s.podKnown {
		lb.Set(labelCRIUID, s.pod.UID)
		lb.Set(labelCRIName, s.pod.Name)
		lb.Set(labelCRINamespace, s.pod.Namespace)
	} else { // ours win: a shim cannot claim a pod we do not know
		lb.Del(labelCRIUID, labelCRIName, labelCRINamespace)
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

// renderHead appends `name{l1="v1",...,` with the shim's labels but
// __name__, empty ones and ours, sorted by name. Non-legacy names use the
// quoted form `{"name",...`.
func renderHead(b []byte, name string, ls labels.Labels) []byte {
	if isLegacyMetricName(name) {
		b = append(b, name...)
		b = append(b, '{')
	} else {
		b = append(b, '{')
		b = appendQuoted(b, name)
		b = append(b, ',')
	}
	ls.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel || l.Value == "" || ours(l.Name) {
			return
		}
		if isLegacyLabelName(l.Name) {
			b = append(b, l.Name...)
		} else {
			b = appendQuoted(b, l.Name)
		}
		b = append(b, '=')
		b = appendQuoted(b, l.Value)
		b = append(b, ',')
	})
	return b
}

// renderSandboxLabels renders the labels kata-monitor adds to each pull
// line of a sandbox, sorted by name: the pod's (when known and not empty)
// and sandbox_id.
func renderSandboxLabels(v *sbVals, podKnown bool) string {
	var b []byte
	if podKnown {
		for _, l := range [...]struct{ name, value string }{
			{labelCRIName, v[2]}, {labelCRINamespace, v[3]}, {labelCRIUID, v[1]},
		} {
			if l.value != "" {
				b = append(b, l.name...)
				b = append(b, '=')
				b = appendQuoted(b, l.value)
				b = append(b, ',')
			}
		}
	}
	b = append(b, labelSandboxID...)
	b = append(b, '=')
	b = appendQuoted(b, v[0])
	return string(b)
}
