package exposition

import (
	"hash/maphash"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// intsBuilder is the smallest builder: a slice of ints.
type intsBuilder struct{ v []int }

type ints struct{ v []int }

func (b *intsBuilder) equal(o *ints) bool { return o != nil && slices.Equal(b.v, o.v) }
func (b *intsBuilder) clone() *ints       { return &ints{v: slices.Clone(b.v)} }
func (b *intsBuilder) hash(seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, x := range b.v {
		maphash.WriteComparable(&h, x)
	}
	return h.Sum64()
}

// TestInternTable: equal contents share one value, which is a copy (the
// builder is reused); last is returned as it is when equal; churn past
// maxInterned empties the table instead of growing it.
func TestInternTable(t *testing.T) {
	var tab internTable[ints]
	b := &intsBuilder{v: []int{1, 2, 3}}
	a := tab.intern(b, nil)
	b.v[0] = 9 // the builder is reused for the next round
	require.Equal(t, []int{1, 2, 3}, a.v, "interned value aliases the builder")
	b.v[0] = 1
	require.Same(t, a, tab.intern(&intsBuilder{v: []int{1, 2, 3}}, nil), "equal content not shared")
	last := &ints{v: []int{4}}
	require.Same(t, last, tab.intern(&intsBuilder{v: []int{4}}, last), "equal last not returned")
	require.Equal(t, 1, tab.len(), "last is not added to the table")

	for i := range maxInterned + 10 {
		tab.intern(&intsBuilder{v: []int{100 + i}}, nil)
	}
	require.LessOrEqual(t, tab.len(), maxInterned)
	require.Positive(t, tab.len())
}
