package scrapecache

import (
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// Values are the label values that differ between sandboxes exposing the
// same series: sandbox_id, cri_uid, cri_name, cri_namespace ("" when
// unknown), in that order (series.NewValues). A value is immutable once
// built; a sandbox gets a new one when its pod changes, so series of the
// old pod keep theirs for their staleness markers.
type Values = series.Values

// Template is a final push label set (sorted, __name__ included) with
// every value equal to one of the sandbox's values replaced by a slot. The
// ~150k series of 200 sandboxes share ~760 templates (one per series of
// the exposition), instead of keeping a []labels.Label each (~30 MiB); a
// pushed series is its template and its sandbox's Values (series.Series),
// which remotewrite encodes from wire bytes prepared once per template.
// Immutable once built.
type Template = series.Template

// template returns the shared template of ls for a sandbox with values v.
// A literal value that happens to equal a sandbox value becomes a slot too,
// which rebuilds the same label set for that sandbox.
func (in *interner) template(ls labels.Labels, v *Values) *Template {
	out := make([]labels.Label, 0, ls.Len())
	slots := make([]int, 0, ls.Len())
	var key strings.Builder
	ls.Range(func(l labels.Label) {
		slot := -1
		for i := range v.Len() {
			if sv := v.Get(i); sv != "" && sv == l.Value {
				l.Value, slot = "", i
				break
			}
		}
		out = append(out, l)
		slots = append(slots, slot)
		key.WriteString(l.Name)
		key.WriteByte(0xff)
		if slot >= 0 {
			key.WriteByte(0xfe)
			key.WriteByte(byte('0' + slot))
		} else {
			key.WriteString(l.Value)
		}
		key.WriteByte(0xff)
	})
	if in == nil {
		return series.NewTemplate(out, slots)
	}
	k := key.String()
	in.mu.Lock()
	if old, ok := in.tmpls[k]; ok {
		in.mu.Unlock()
		return old
	}
	in.mu.Unlock()
	for i := range out { // share the strings before publishing
		out[i].Name = in.str(out[i].Name)
		if slots[i] < 0 {
			out[i].Value = in.str(out[i].Value)
		}
	}
	t := series.NewTemplate(out, slots)
	in.mu.Lock()
	defer in.mu.Unlock()
	if old, ok := in.tmpls[k]; ok {
		return old
	}
	in.tmpls[k] = t
	return t
}
