package exposition

import (
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Labels kata-monitor adds to every shim series (upstream's names).
const (
	LabelSandboxID    = "sandbox_id"
	LabelCRIUID       = "cri_uid"
	LabelCRIName      = "cri_name"
	LabelCRINamespace = "cri_namespace"
)

// Ours reports whether name is one of the labels kata-monitor sets: a
// shim's own value for it is never kept.
func Ours(name string) bool {
	switch name {
	case LabelSandboxID, LabelCRIUID, LabelCRIName, LabelCRINamespace:
		return true
	}
	return false
}

// Series is what does not depend on the sandbox exposing a series: every
// shim exposes the same ~760 series, so at 200 sandboxes ~150k cached
// series share ~760 of these (interned by the scrape cache) instead of each
// carrying its own rendered names and labels. Immutable once built: the
// exported fields are read-only.
type Series struct {
	// Name is the metric name as the shim exposed it (family membership is
	// decided on the shim's names); OutName is the name after renaming.
	Name, OutName string
	// Canon identifies the series by content, with "le" and "quantile" as
	// Prometheus 3 spells them: two spellings of one series are one series
	// (and one push series). Two Series with equal Canon are the same
	// series, also when built apart.
	Canon string
	// UTF8 is set when the name or a label name is outside the legacy
	// charset (the head quotes it).
	UTF8 bool

	// head is the pull line up to the sandbox's labels, escaped:
	// `name{l1="v1",l2="v2",` (`name{` without shim labels, `{"name",...,`
	// for a name the legacy charset cannot spell). A line is head, the
	// sandbox's labels, `} ` and the value.
	head string
	// le/quantile present and whether expfmt would accept them as floats.
	hasLE, badLE, hasQuantile, badQuantile bool
	// quoted holds the labels the head was rendered from when UTF8 is set,
	// to render it escaped for clients that cannot read UTF-8 names
	// (escapedHead).
	quoted labels.Labels
}

// NewSeries builds the Series of the labels ls (the pull spelling: as the
// shim served them) named name as exposed and outName after renaming. key
// is the rendered head (RenderHead) followed by name, headLen the head's
// length in it; canon is the canonical head when the pull spelling is not
// canonical, "" otherwise.
func NewSeries(name, outName, key string, headLen int, canon string, ls labels.Labels) *Series {
	s := &Series{Name: name, OutName: outName, Canon: key, head: key[:headLen]}
	if canon != "" {
		s.Canon = canon + name
	}
	if needsQuotes(outName, ls) {
		s.UTF8, s.quoted = true, ls
	}
	if v := ls.Get(model.BucketLabel); v != "" {
		s.hasLE, s.badLE = true, !isTextFloat(v)
	}
	if v := ls.Get(model.QuantileLabel); v != "" {
		s.hasQuantile, s.badQuantile = true, !isTextFloat(v)
	}
	return s
}

// Renderable reports whether expfmt would accept the sample inside a
// family of type t: histograms need float "le" values and non-negative
// counts, summaries float "quantile" values. Such samples are still pushed.
func Renderable(t model.MetricType, s *Series, v float64) bool {
	switch t {
	case model.MetricTypeHistogram:
		if s.badLE {
			return false
		}
		if v < 0 && (hasSuffix(s.Name, "_count") || (s.hasLE && !hasSuffix(s.Name, "_sum"))) {
			return false
		}
	case model.MetricTypeSummary:
		return !s.badQuantile
	}
	return true
}

// RenderHead appends `name{l1="v1",...,` with the shim's labels but
// __name__, empty ones and ours, sorted by name. Non-legacy names use the
// quoted form `{"name",...`.
func RenderHead(b []byte, name string, ls labels.Labels) []byte {
	if isLegacyMetricName(name) {
		b = append(b, name...)
		b = append(b, '{')
	} else {
		b = append(b, '{')
		b = appendQuoted(b, name)
		b = append(b, ',')
	}
	ls.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel || l.Value == "" || Ours(l.Name) {
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

// SandboxLabels renders the labels kata-monitor adds to each pull line of
// a sandbox, sorted by name: the pod's (when podKnown and not empty) and
// sandbox_id.
func SandboxLabels(id, uid, name, namespace string, podKnown bool) string {
	var b []byte
	if podKnown {
		for _, l := range [...]struct{ name, value string }{
			{LabelCRIName, name}, {LabelCRINamespace, namespace}, {LabelCRIUID, uid},
		} {
			if l.value != "" {
				b = append(b, l.name...)
				b = append(b, '=')
				b = appendQuoted(b, l.value)
				b = append(b, ',')
			}
		}
	}
	b = append(b, LabelSandboxID...)
	b = append(b, '=')
	b = appendQuoted(b, id)
	return string(b)
}
