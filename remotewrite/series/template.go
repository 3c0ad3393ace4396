package series

import (
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
)

// Template is a label set shared by many series, with some values left
// as slots that each series fills from its own Values. The ~760 series of
// a Kata shim's exposition, say, have the same labels in every sandbox but
// for sandbox_id and the pod labels: 200 sandboxes share 760 templates and
// 200 Values instead of keeping 150k label sets. Encoders prepare each
// template's and each Values' wire form once (Memo) and reuse it in every
// round. Immutable once built; safe for concurrent use.
type Template struct {
	ls    []labels.Label // sorted by name; a slot's Value is ""
	slots []int8         // per label: -1 for a literal, else the index in Values
	name  string         // the __name__ value
	memo  memo
}

// MaxSlots is the most values a Template's slots may refer to.
const MaxSlots = 16

// NewTemplate returns the template of the label set ls (sorted by name,
// names unique, __name__ included) where label i takes its value from
// Values slot slots[i] when slots[i] >= 0 (its Value in ls is then
// ignored) and is the literal ls[i].Value otherwise. slots may be nil (no
// slot). It copies both slices. It panics when slots is not nil and not
// as long as ls, or a slot is not below MaxSlots: a programming error.
func NewTemplate(ls []labels.Label, slots []int) *Template {
	if slots != nil && len(slots) != len(ls) {
		panic("series.NewTemplate: slots and labels differ in length")
	}
	t := &Template{ls: make([]labels.Label, len(ls)), slots: make([]int8, len(ls))}
	for i, l := range ls {
		t.slots[i] = -1
		if slots != nil && slots[i] >= 0 {
			if slots[i] >= MaxSlots {
				panic("series.NewTemplate: slot out of range")
			}
			t.slots[i] = int8(slots[i])
			l.Value = ""
		}
		t.ls[i] = l
		if l.Name == labels.MetricName {
			t.name = l.Value
		}
	}
	return t
}

// Len is the number of labels of the template, slots included.
func (t *Template) Len() int { return len(t.ls) }

// Label returns the template's label i (in name order): its name, and
// either its literal value (slot -1) or the Values slot it takes its value
// from.
func (t *Template) Label(i int) (name, value string, slot int) {
	return t.ls[i].Name, t.ls[i].Value, int(t.slots[i])
}

// Name returns the __name__ value, "" when it is a slot or missing.
func (t *Template) Name() string { return t.name }

// AppendTo appends the label set of the series whose slot values are v,
// leaving out a label whose value is empty (an empty label is an absent
// label). v may be nil when the template has no slot.
func (t *Template) AppendTo(dst []labels.Label, v *Values) []labels.Label {
	for i, l := range t.ls {
		if s := t.slots[i]; s >= 0 {
			if l.Value = v.Get(int(s)); l.Value == "" {
				continue
			}
		}
		dst = append(dst, l)
	}
	return dst
}

// Get returns the value of the label name in the label set of the series
// whose slot values are v, "" when it has none.
func (t *Template) Get(name string, v *Values) string {
	for i := range t.ls {
		if t.ls[i].Name == name {
			if s := t.slots[i]; s >= 0 {
				return v.Get(int(s))
			}
			return t.ls[i].Value
		}
	}
	return ""
}

// Memo returns what an encoder stored with SetMemo, nil before.
func (t *Template) Memo() any { return t.memo.get() }

// SetMemo stores x for encoders, which derive it from the immutable
// template (its wire form, say), unless something is stored already; it
// returns what is stored. Only remotewrite/codec uses it: a value of
// one type, computed the same by every caller, so a race costs duplicate
// work only.
func (t *Template) SetMemo(x any) any { return t.memo.set(x) }

// Values are the values of a Template's slots for one series or a group
// of series (a sandbox's id and pod labels, say). Immutable once built;
// safe for concurrent use.
type Values struct {
	v    []string
	memo memo
}

// NewValues returns the Values with slot i = v[i] ("" for an absent
// label). It copies v. It panics with more than MaxSlots values.
func NewValues(v ...string) *Values {
	if len(v) > MaxSlots {
		panic("series.NewValues: more than MaxSlots values")
	}
	return &Values{v: append([]string(nil), v...)}
}

// Len is the number of slots.
func (v *Values) Len() int {
	if v == nil {
		return 0
	}
	return len(v.v)
}

// Get returns slot i's value, "" when v is nil or has no slot i.
func (v *Values) Get(i int) string {
	if v == nil || i >= len(v.v) {
		return ""
	}
	return v.v[i]
}

// Memo and SetMemo are Template's, for Values.
func (v *Values) Memo() any { return v.memo.get() }

// SetMemo is Template.SetMemo for Values.
func (v *Values) SetMemo(x any) any { return v.memo.set(x) }

// memo holds one value stored once.
type memo struct{ p atomic.Pointer[box] }

type box struct{ v any }

func (m *memo) get() any {
	if b := m.p.Load(); b != nil {
		return b.v
	}
	return nil
}

func (m *memo) set(x any) any {
	if m.p.CompareAndSwap(nil, &box{v: x}) {
		return x
	}
	return m.p.Load().v
}
