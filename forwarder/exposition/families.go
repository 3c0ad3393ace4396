package exposition

import (
	"hash/maphash"
	"slices"
)

// Families is the families of one sandbox's round, in order of appearance,
// each with its distinct sample names: what Merge reads of a Lines besides
// the lines. Sandboxes serving the same structure have equal Families, so
// one immutable copy is shared by all of them (FamilyTable) instead of
// each round's Lines holding its own (~7 KiB a sandbox for the shared
// exposition's 75 families, per snapshot alive).
type Families struct {
	fams  []famMeta
	names []string
}

// FamiliesBuilder collects a round's families; reused across rounds.
type FamiliesBuilder struct{ Families }

// Reset empties b, keeping its capacity.
func (b *FamiliesBuilder) Reset() {
	clear(b.names)
	b.fams, b.names = b.fams[:0], b.names[:0]
}

// Add adds the next family (in the order of the fam indexes given to
// Lines.Append) with its distinct sample names; names is copied.
func (b *FamiliesBuilder) Add(m FamilyMeta, names []string) {
	lo := len(b.names)
	b.names = append(b.names, names...)
	b.fams = append(b.fams, famMeta{FamilyMeta: m, namesLo: lo, namesHi: len(b.names)})
}

// equal reports whether b holds the same families as f.
func (b *FamiliesBuilder) equal(f *Families) bool {
	return f != nil && slices.Equal(b.fams, f.fams) && slices.Equal(b.names, f.names)
}

func (b *FamiliesBuilder) hash(seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for i := range b.fams {
		m := &b.fams[i]
		h.WriteString(m.Name)
		h.WriteByte(0)
		h.WriteString(m.Help)
		h.WriteByte(0)
		h.WriteString(string(m.Type))
	}
	for _, n := range b.names {
		h.WriteString(n)
		h.WriteByte(0)
	}
	return h.Sum64()
}

// FamilyTable hands out one shared Families per distinct content. Safe
// for concurrent use; the zero value is ready.
type FamilyTable struct{ t internTable[Families] }

// Intern returns the shared Families equal to b: last when it is (the
// sandbox's previous round, the common case: no lock, no hash), else one
// from the table, else a copy of b added to it.
func (t *FamilyTable) Intern(b *FamiliesBuilder, last *Families) *Families {
	return t.t.intern(b, last)
}

// clone returns an immutable copy of b's families, right-sized.
func (b *FamiliesBuilder) clone() *Families {
	return &Families{fams: slices.Clone(b.fams), names: slices.Clone(b.names)}
}
