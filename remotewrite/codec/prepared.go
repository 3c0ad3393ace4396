package codec

import (
	"encoding/binary"
	"strings"
	"sync"

	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// Prepared wire forms: the remote write 1.0 bytes of a series.Template's
// labels and of a series.Values' values, built once per template and
// values and kept in their memo, so a round's series cost a few copies and
// their sample instead of encoding 12 labels each (issue 14: marshalV1
// was a quarter of the push path). They depend on nothing but the
// template or values, so every endpoint and round shares them.

// tmplPrep is what a template's memo holds.
type tmplPrep struct {
	// v1 holds the template's literal labels as complete 1.0 Label
	// messages (0x0a, size, name and value fields) in label order; the
	// slots' messages go between them, per series.
	v1 []byte
	// slots are the template's slots in label order.
	slots []slotV1
}

// slotV1 is one slot of a prepared template: v1[prev:lit] are the literal
// label messages before it (prev is the previous slot's lit), name its
// label's name field.
type slotV1 struct {
	lit  int32
	slot int8
	name *nameField
}

// nameField is the 1.0 name field (0x0a, length, name) of a label a
// template takes from a slot. Templates share one per name (nameFields),
// so that slotMsgs recognises a slot message it has built by the pointer.
type nameField struct{ b []byte }

// nameFields interns nameFields by label name, up to maxNameFields names
// (sandbox_id and the pod labels, in practice; a shim label that happens
// to equal a pod label's value adds its name). Past the bound a name gets
// a field of its own: correct, only not recognised across templates.
var nameFields struct {
	sync.Mutex
	m map[string]*nameField
}

const maxNameFields = 1024

func internNameField(name string) *nameField {
	nameFields.Lock()
	defer nameFields.Unlock()
	if f, ok := nameFields.m[name]; ok {
		return f
	}
	f := &nameField{b: appendStringField(nil, 0x0a, name)}
	if nameFields.m == nil {
		nameFields.m = make(map[string]*nameField)
	}
	if len(nameFields.m) < maxNameFields {
		nameFields.m[strings.Clone(name)] = f
	}
	return f
}

// valsPrep is what a Values' memo holds: the 1.0 value field (0x12, length,
// bytes) of each slot, empty for an empty value, as buf[off[i]:off[i+1]].
type valsPrep struct {
	buf []byte
	off []int32
}

func (v *valsPrep) field(i int) []byte {
	if i+1 >= len(v.off) {
		return nil
	}
	return v.buf[v.off[i]:v.off[i+1]]
}

// prepTemplate returns t's prepared form, building it on first use.
func prepTemplate(t *series.Template) *tmplPrep {
	if p, ok := t.Memo().(*tmplPrep); ok {
		return p
	}
	p := &tmplPrep{}
	for i := range t.Len() {
		name, value, slot := t.Label(i)
		if slot >= 0 {
			p.slots = append(p.slots, slotV1{lit: int32(len(p.v1)), slot: int8(slot), name: internNameField(name)})
			continue
		}
		n := stringFieldSize(name) + stringFieldSize(value)
		p.v1 = append(p.v1, 0x0a) // TimeSeries.labels
		p.v1 = binary.AppendUvarint(p.v1, uint64(n))
		p.v1 = appendStringField(p.v1, 0x0a, name)
		p.v1 = appendStringField(p.v1, 0x12, value)
	}
	return t.SetMemo(p).(*tmplPrep)
}

// prepValues returns v's prepared form, building it on first use; nil
// values have no slot.
func prepValues(v *series.Values) *valsPrep {
	if v == nil {
		return &valsPrep{}
	}
	if p, ok := v.Memo().(*valsPrep); ok {
		return p
	}
	p := &valsPrep{off: make([]int32, 1, v.Len()+1)}
	for i := range v.Len() {
		p.buf = appendStringField(p.buf, 0x12, v.Get(i))
		p.off = append(p.off, int32(len(p.buf)))
	}
	return v.SetMemo(p).(*valsPrep)
}

// slotMsgs keeps, for the values of the series being marshalled, each
// slot's complete 1.0 Label message for the name it was last built for:
// consecutive series share their values (a sandbox's series come
// together) and their slots' names (sandbox_id and the pod labels), so a
// slot costs one copy. Not safe for concurrent use (one per marshaler).
type slotMsgs struct {
	vals *valsPrep
	name [series.MaxSlots]*nameField
	msg  [series.MaxSlots][]byte
}

// get returns slot s's Label message with the values v: empty when the
// value is (the label is left out, as series.Template.AppendTo does).
func (c *slotMsgs) get(v *valsPrep, s *slotV1) []byte {
	if c.vals != v {
		c.vals, c.name = v, [series.MaxSlots]*nameField{}
	}
	if c.name[s.slot] == s.name {
		return c.msg[s.slot]
	}
	m := c.msg[s.slot][:0]
	if vf := v.field(int(s.slot)); len(vf) > 0 {
		m = append(m, 0x0a) // TimeSeries.labels
		m = binary.AppendUvarint(m, uint64(len(s.name.b)+len(vf)))
		m = append(m, s.name.b...)
		m = append(m, vf...)
	}
	c.name[s.slot], c.msg[s.slot] = s.name, m
	return m
}

// labelsSizeV1 is the size of the 1.0 Label messages of the series of
// template t with values v.
func (t *tmplPrep) labelsSizeV1(c *slotMsgs, v *valsPrep) int {
	n := len(t.v1)
	for i := range t.slots {
		n += len(c.get(v, &t.slots[i]))
	}
	return n
}

// appendLabelsV1 appends the 1.0 Label messages of the series of template
// t with values v: the same bytes as marshalV1 writes for the labels
// t.AppendTo(nil, v).
func (t *tmplPrep) appendLabelsV1(b []byte, c *slotMsgs, v *valsPrep) []byte {
	prev := int32(0)
	for i := range t.slots {
		s := &t.slots[i]
		b = append(b, t.v1[prev:s.lit]...)
		b = append(b, c.get(v, s)...)
		prev = s.lit
	}
	return append(b, t.v1[prev:]...)
}

// refCache remembers, within one 2.0 request, the symbol references of
// the templates, values and metadata its series share, so that a series
// given as a template costs a map lookup or two instead of symbolizing
// each of its ~26 label strings (issue 14: Symbolize was a quarter of the
// 2.0 push path). References are looked up when a series first needs
// them, in the order the series' labels would symbolize them, so the
// symbols table is the one symbolizing every label set would build
// (TestMarshalV2PreparedMatches).
type refCache struct {
	tmpl map[*series.Template]int // first of 2 refs per label in refs
	vals map[*series.Values]int   // first of 1 ref per slot in refs
	md   map[*series.Metadata][2]uint32
	refs []uint32 // unsetRef until looked up
}

const unsetRef = ^uint32(0)

func (c *refCache) reset() {
	if c.tmpl == nil {
		c.tmpl, c.vals, c.md = map[*series.Template]int{}, map[*series.Values]int{}, map[*series.Metadata][2]uint32{}
	}
	clear(c.tmpl)
	clear(c.vals)
	clear(c.md)
	c.refs = c.refs[:0]
}

// span returns where n refs of a key start in c.refs, adding them (as
// unsetRef) on first sight.
func (c *refCache) span(n int) int {
	at := len(c.refs)
	for range n {
		c.refs = append(c.refs, unsetRef)
	}
	return at
}

// ref returns c.refs[i], symbolizing s into it first if unset.
func (c *refCache) ref(i int, syms *writev2.SymbolsTable, s string) uint32 {
	if r := c.refs[i]; r != unsetRef {
		return r
	}
	r := syms.Symbolize(s)
	c.refs[i] = r
	return r
}

// appendRefs appends the label references (name, value) of the series of
// template t with values v, leaving out a slot whose value is empty as
// series.Template.AppendTo does.
func (c *refCache) appendRefs(dst []uint32, syms *writev2.SymbolsTable, t *series.Template, v *series.Values) []uint32 {
	to, ok := c.tmpl[t]
	if !ok {
		to = c.span(2 * t.Len())
		c.tmpl[t] = to
	}
	vo := -1
	for i := range t.Len() {
		name, val, slot := t.Label(i)
		vi := to + 2*i + 1
		if slot >= 0 {
			if val = v.Get(slot); val == "" {
				continue
			}
			if vo < 0 {
				var ok bool
				if vo, ok = c.vals[v]; !ok {
					vo = c.span(v.Len())
					c.vals[v] = vo
				}
			}
			vi = vo + slot
		}
		nr := c.ref(to+2*i, syms, name)
		dst = append(dst, nr, c.ref(vi, syms, val))
	}
	return dst
}

// metadataRefs returns the references of md's help and unit.
func (c *refCache) metadataRefs(syms *writev2.SymbolsTable, md *series.Metadata) (help, unit uint32) {
	if r, ok := c.md[md]; ok {
		return r[0], r[1]
	}
	help = syms.Symbolize(md.Help)
	unit = syms.Symbolize(md.Unit)
	c.md[md] = [2]uint32{help, unit}
	return help, unit
}
