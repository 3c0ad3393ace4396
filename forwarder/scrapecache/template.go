package scrapecache

import (
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Values are the label values that differ between sandboxes exposing the
// same series: sandbox_id, cri_uid, cri_name, cri_namespace ("" when
// unknown). A value is immutable once built; a sandbox gets a new one when
// its pod changes, so series of the old pod keep theirs for their
// staleness markers.
type Values [4]string

// tmplLabel is one label of a template: a literal value, or (slot >= 0)
// the sandbox value in that slot.
type tmplLabel struct {
	name, value string
	slot        int
}

// Template is a final push label set (sorted, __name__ included) with
// every value equal to one of the sandbox's values replaced by a slot. The
// ~150k series of 200 sandboxes share ~760 templates (one per series of
// the exposition), instead of keeping a []labels.Label each (~30 MiB):
// labels are built per push round from the template and the sandbox's
// values. Immutable once built.
type Template struct {
	ls []tmplLabel
}

// AppendTo appends the label set of the sandbox with values v.
func (t *Template) AppendTo(dst []labels.Label, v *Values) []labels.Label {
	for _, l := range t.ls {
		val := l.value
		if l.slot >= 0 {
			val = v[l.slot]
		}
		dst = append(dst, labels.Label{Name: l.name, Value: val})
	}
	return dst
}

// Name returns the template's metric name (its __name__ value).
func (t *Template) Name() string {
	for _, l := range t.ls {
		if l.name == labels.MetricName {
			return l.value
		}
	}
	return ""
}

// template returns the shared template of ls for a sandbox with values v.
// A literal value that happens to equal a sandbox value becomes a slot too,
// which rebuilds the same label set for that sandbox.
func (in *interner) template(ls labels.Labels, v *Values) *Template {
	t := &Template{ls: make([]tmplLabel, 0, ls.Len())}
	var key strings.Builder
	ls.Range(func(l labels.Label) {
		tl := tmplLabel{name: l.Name, value: l.Value, slot: -1}
		for i, sv := range v {
			if sv != "" && sv == l.Value {
				tl.value, tl.slot = "", i
				break
			}
		}
		t.ls = append(t.ls, tl)
		key.WriteString(tl.name)
		key.WriteByte(0xff)
		if tl.slot >= 0 {
			key.WriteByte(0xfe)
			key.WriteByte(byte('0' + tl.slot))
		} else {
			key.WriteString(tl.value)
		}
		key.WriteByte(0xff)
	})
	if in == nil {
		return t
	}
	k := key.String()
	in.mu.Lock()
	if old, ok := in.tmpls[k]; ok {
		in.mu.Unlock()
		return old
	}
	in.mu.Unlock()
	for i := range t.ls { // share the strings before publishing
		t.ls[i].name = in.str(t.ls[i].name)
		if t.ls[i].slot < 0 {
			t.ls[i].value = in.str(t.ls[i].value)
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if old, ok := in.tmpls[k]; ok {
		return old
	}
	in.tmpls[k] = t
	return t
}

// Len is the number of labels of the template's label sets.
func (t *Template) Len() int { return len(t.ls) }
