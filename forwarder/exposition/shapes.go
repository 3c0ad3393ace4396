package exposition

import (
	"hash/maphash"
	"slices"
	"sync"
)

// maxShapes bounds a ShapeTable: past it the table is emptied (the
// sandboxes keep the shapes they hold), so churn cannot grow it.
const maxShapes = 256

// ShapeTable hands out one shared Shape per distinct content (Lines.Finish).
// Safe for concurrent use; the zero value is ready.
type ShapeTable struct {
	mu   sync.Mutex
	seed maphash.Seed
	m    map[uint64][]*Shape
}

// intern returns the shared Shape equal to b: last when it is (the
// sandbox's previous round, the common case: no lock, no hash), else one
// from the table, else a copy of b added to it.
func (t *ShapeTable) intern(b *shapeBuilder, last *Shape) *Shape {
	if b.equal(last) {
		return last
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m) >= maxShapes {
		if t.m == nil {
			t.seed = maphash.MakeSeed()
		}
		t.m = make(map[uint64][]*Shape)
	}
	h := b.hash(t.seed)
	for _, s := range t.m[h] {
		if b.equal(s) {
			return s
		}
	}
	s := b.clone()
	t.m[h] = append(t.m[h], s)
	return s
}

// Len is the number of shapes in t (tests).
func (t *ShapeTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, v := range t.m {
		n += len(v)
	}
	return n
}

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
