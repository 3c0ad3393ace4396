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

// entry is one series of one sandbox, everything about it that does not
// change from round to round: built once when the series first appears and
// reused until it disappears, so a round costs a map lookup per sample.
type entry struct {
	// invalid marks a series we drop every round (bad names, non-UTF-8
	// values, duplicate label names); such entries have nothing else set.
	invalid bool
	// name is the metric name as the shim exposed it (family membership is
	// decided on the shim's names); outName is the name after renaming.
	name, outName string
	// prefix is the rendered `name{labels} ` of the pull exposition, with
	// the sandbox's labels injected and everything escaped. It is also the
	// entry's key in sandboxState.byLabels (the same string, not a copy).
	prefix string
	// le/quantile present and whether expfmt would accept them as floats.
	hasLE, badLE, hasQuantile, badQuantile bool
	// seen is the last round in which the sandbox exposed this series.
	seen uint64

	// Push side, set only when the forwarder has appenders.
	dropped bool       // removed by metric_relabel_configs
	tmpl    *labelTmpl // final label set, sorted, __name__ included, shared by all sandboxes
	vals    *sbVals    // the sandbox values tmpl refers to
	hash    uint64     // of the final label set
	ref     *seriesRef // bound in the push phase of a scheduled round
}

// entryEnv is what building an entry needs from the forwarder; immutable.
type entryEnv struct {
	push     bool
	strs     *interner // shared strings of all sandboxes' entries; may be nil
	relabel  []*relabel.Config
	external []labels.Label // sorted by name
}

// newEntry builds the entry for the series the parser is positioned on.
func (s *sandboxState) newEntry(env *entryEnv, p textparse.Parser) *entry {
	var ls labels.Labels
	p.Labels(&ls)
	if !validLabels(ls) {
		return &entry{invalid: true}
	}
	// Interned: a substring of ls would keep all of ls alive.
	e := &entry{name: env.strs.str(ls.Get(model.MetricNameLabel))}
	if out, ok := renamed(e.name); ok {
		e.outName = env.strs.str(out)
	} else {
		e.outName = e.name
	}

	lb := s.lb
	lb.Reset(ls)
	ls.Range(func(l labels.Label) {
		if l.Value == "" { // an empty label is an absent label
			lb.Del(l.Name)
		}
	})
	lb.Set(model.MetricNameLabel, e.outName)
	lb.Set(labelSandboxID, s.id)
	if s.podKnown {
		lb.Set(labelCRIUID, s.pod.UID)
		lb.Set(labelCRIName, s.pod.Name)
		lb.Set(labelCRINamespace, s.pod.Namespace)
	} else { // ours win: a shim cannot claim a pod we do not know
		lb.Del(labelCRIUID, labelCRIName, labelCRINamespace)
	}
	final := lb.Labels()

	if v := final.Get(model.BucketLabel); v != "" {
		e.hasLE, e.badLE = true, !isTextFloat(v)
	}
	if v := final.Get(model.QuantileLabel); v != "" {
		e.hasQuantile, e.badQuantile = true, !isTextFloat(v)
	}
	s.scratch = renderPrefix(s.scratch[:0], e.outName, final)
	e.prefix = string(s.scratch)

	if env.push {
		e.pushLabels(env, lb, final, s.vals)
	}
	return e
}

// pushLabels applies metric_relabel_configs and external labels to the
// enriched label set and keeps the result for remote write, as a template
// shared by every sandbox exposing the same series plus the sandbox's values.
func (e *entry) pushLabels(env *entryEnv, lb *labels.Builder, final labels.Labels, vals *sbVals) {
	lb.Reset(final)
	if !relabel.ProcessBuilder(lb, env.relabel...) || lb.Get(model.MetricNameLabel) == "" {
		e.dropped = true
		return
	}
	for _, l := range env.external {
		if lb.Get(l.Name) == "" {
			lb.Set(l.Name, l.Value)
		}
	}
	out := lb.Labels()
	e.tmpl, e.vals = env.strs.template(out, vals), vals
	e.hash = out.Hash()
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

// renderPrefix appends `name{l1="v1",...} ` with every label but __name__,
// sorted by name. Non-legacy names use the quoted form `{"name",...}`.
func renderPrefix(b []byte, name string, ls labels.Labels) []byte {
	first := true
	if isLegacyMetricName(name) {
		b = append(b, name...)
		b = append(b, '{')
	} else {
		b = append(b, '{')
		b = appendQuoted(b, name)
		first = false
	}
	ls.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		if isLegacyLabelName(l.Name) {
			b = append(b, l.Name...)
		} else {
			b = appendQuoted(b, l.Name)
		}
		b = append(b, '=')
		b = appendQuoted(b, l.Value)
	})
	return append(b, '}', ' ')
}
