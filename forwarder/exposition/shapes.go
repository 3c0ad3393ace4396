package exposition

import (
	"hash/maphash"
	"slices"
)

// ShapeTable hands out one shared Shape per distinct content (Lines.Finish).
// Safe for concurrent use; the zero value is ready.
type ShapeTable struct{ t internTable[Shape] }

func (t *ShapeTable) intern(b *shapeBuilder, last *Shape) *Shape { return t.t.intern(b, last) }

// Len is the number of shapes in t (tests).
func (t *ShapeTable) Len() int { return t.t.len() }

// equal reports whether b holds the same series and runs as s.
func (b *shapeBuilder) equal(s *Shape) bool {
	return s != nil && slices.Equal(b.series, s.series) && slices.Equal(b.runs, s.runs)
}

// clone returns an immutable copy of b's shape, right-sized.
func (b *shapeBuilder) clone() *Shape {
	return &Shape{series: slices.Clone(b.series), runs: slices.Clone(b.runs)}
}

func (b *shapeBuilder) hash(seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, s := range b.series {
		maphash.WriteComparable(&h, s)
	}
	for _, r := range b.runs {
		maphash.WriteComparable(&h, r)
	}
	return h.Sum64()
}
