package tenant

import (
	"slices"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// Block sizes of the held series' storage: about 14, 64 and 4 KiB.
const (
	seriesPerBlock  = 256
	labelsPerBlock  = 2048
	samplesPerBlock = 256
)

// store keeps the copies of the series the router gathers, in fixed-size
// blocks from free lists shared by every tenant: what it keeps follows
// what is held now (at most maxHeldSeries, plus a partly used block per
// tenant), not the sum of each tenant's largest share. Not safe for
// concurrent use (the router's mutex guards it).
type store struct {
	series  pool[series.Series]
	labels  pool[labels.Label]
	samples pool[series.Sample]
	// scratch is one group's series, contiguous, for Queue.Append.
	scratch []series.Series
}

func newStore() *store {
	return &store{
		series:  pool[series.Series]{size: seriesPerBlock},
		labels:  pool[labels.Label]{size: labelsPerBlock},
		samples: pool[series.Sample]{size: samplesPerBlock},
	}
}

// held is one tenant's held series: blocks taken from a store.
type held struct {
	n       int // series
	series  [][]series.Series
	labels  [][]labels.Label
	samples [][]series.Sample
}

// hold copies s into h; the caller may reuse s's slices afterwards.
func (st *store) hold(h *held, s series.Series) {
	c := series.Series{
		Labels:   copyInto(&st.labels, &h.labels, s.Labels),
		Template: s.Template, // immutable, shared
		Values:   s.Values,
		Samples:  copyInto(&st.samples, &h.samples, s.Samples),
		Metadata: s.Metadata,
	}
	n := len(h.series)
	if n == 0 || len(h.series[n-1]) == cap(h.series[n-1]) {
		h.series = append(h.series, st.series.get())
		n++
	}
	h.series[n-1] = append(h.series[n-1], c)
	h.n++
}

// seriesOf returns h's series as one slice, valid until release(h) or the
// next call.
func (st *store) seriesOf(h *held) []series.Series {
	st.scratch = st.scratch[:0]
	for _, b := range h.series {
		st.scratch = append(st.scratch, b...)
	}
	return st.scratch
}

// release empties h, its blocks back in the free lists. They are not
// cleared (that cost 3 % of the push CPU at 20 sandboxes): until reused
// they keep label strings and metadata of earlier rounds alive, at most
// what the blocks can hold.
func (st *store) release(h *held) {
	st.scratch = st.scratch[:0]
	st.series.putAll(&h.series)
	st.labels.putAll(&h.labels)
	st.samples.putAll(&h.samples)
	h.n = 0
}

// pool is a free list of blocks of size elements.
type pool[T any] struct {
	size int
	free [][]T
}

func (p *pool[T]) get() []T {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	return make([]T, 0, p.size)
}

// putAll frees the blocks of *bl of the pool's size; *bl is left empty.
func (p *pool[T]) putAll(bl *[][]T) {
	for _, b := range *bl {
		if cap(b) == p.size {
			p.free = append(p.free, b[:0])
		}
	}
	clear(*bl)
	*bl = (*bl)[:0]
}

// copyInto copies vals into the last block of *bl, or a new one from p
// when they do not fit, and returns the copy. Values longer than a block
// get a block of their own (not pooled).
func copyInto[T any](p *pool[T], bl *[][]T, vals []T) []T {
	if len(vals) == 0 {
		return nil
	}
	if len(vals) > p.size {
		own := slices.Clone(vals)
		*bl = append(*bl, own)
		return own[:len(own):len(own)]
	}
	n := len(*bl)
	if n == 0 || cap((*bl)[n-1])-len((*bl)[n-1]) < len(vals) {
		*bl = append(*bl, p.get())
		n++
	}
	last := &(*bl)[n-1]
	lo := len(*last)
	*last = append(*last, vals...)
	return (*last)[lo:len(*last):len(*last)]
}
