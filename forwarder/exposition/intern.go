package exposition

import (
	"hash/maphash"
	"sync"
)

// maxInterned bounds an internTable: past it the table is emptied (the
// sandboxes keep the values they hold), so churn cannot grow it.
const maxInterned = 256

// builder is a value being built that an internTable can share: compared
// with a shared *T, hashed, and copied into a new immutable *T.
type builder[T any] interface {
	equal(*T) bool
	hash(maphash.Seed) uint64
	clone() *T
}

// internTable hands out one shared *T per distinct content. Safe for
// concurrent use; the zero value is ready.
type internTable[T any] struct {
	mu   sync.Mutex
	seed maphash.Seed
	m    map[uint64][]*T
}

// intern returns the shared *T equal to b: last when it is (the sandbox's
// previous round, the common case: no lock, no hash), else one from the
// table, else a copy of b added to it.
func (t *internTable[T]) intern(b builder[T], last *T) *T {
	if b.equal(last) {
		return last
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m) >= maxInterned {
		if t.m == nil {
			t.seed = maphash.MakeSeed()
		}
		t.m = make(map[uint64][]*T)
	}
	h := b.hash(t.seed)
	for _, v := range t.m[h] {
		if b.equal(v) {
			return v
		}
	}
	v := b.clone()
	t.m[h] = append(t.m[h], v)
	return v
}

// len is the number of values in t (tests).
func (t *internTable[T]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, v := range t.m {
		n += len(v)
	}
	return n
}
