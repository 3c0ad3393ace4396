package scrape

import "sync"

// Buffers pools scrape buffers across the sandboxes of a round, at most one
// per concurrency slot, and lets them go between rounds (Release): a
// round's buffers (up to concurrency times the exposition's size, ~2 MB
// for 32 slots of a shim's 58 KiB) are not held while no scrape runs, when
// pull rounds and requests need the memory. Safe for concurrent use.
type Buffers struct {
	mu   sync.Mutex
	max  int
	bufs [][]byte
	// hint is the capacity of a new buffer: the mean body of the last
	// round that had one, plus an eighth (0: none yet, the scraper
	// grows its own).
	hint       int
	sum, count int // bodies put since the last Release
}

// NewBuffers returns a pool that keeps at most n buffers.
func NewBuffers(n int) *Buffers { return &Buffers{max: n} }

// Get returns a scrape buffer from the pool, else a new one sized for the
// last round's mean body, else nil (the scraper allocates one).
func (p *Buffers) Get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.bufs)
	if n == 0 {
		if p.hint == 0 {
			return nil
		}
		return make([]byte, 0, p.hint)
	}
	b := p.bufs[n-1]
	p.bufs[n-1] = nil
	p.bufs = p.bufs[:n-1]
	return b
}

// Put returns a scrape buffer to the pool. One huge exposition (up to the
// shim client's 32 MiB cap) must not stay pinned: a buffer much bigger than
// what it held (more than 4 times its length plus 64 KiB) is dropped, and
// the next scrape allocates one that fits.
func (p *Buffers) Put(b []byte) {
	if b == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sum += len(b)
	p.count++
	if cap(b) > 4*len(b)+64<<10 {
		return
	}
	if len(p.bufs) < p.max {
		p.bufs = append(p.bufs, b[:0])
	}
}

// Release lets go of the pooled buffers, once a round's scrapes are done;
// the next round's new buffers get the capacity of this round's mean body
// (plus an eighth), so that a typical exposition fits without regrowing
// and one huge exposition does not size them all.
func (p *Buffers) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.bufs)
	p.bufs = nil
	if p.count > 0 {
		mean := p.sum / p.count
		p.hint = mean + mean/8
	}
	p.sum, p.count = 0, 0
}

// Pooled returns how many buffers the pool holds and the largest capacity
// among them, and the capacity a new buffer gets.
func (p *Buffers) Pooled() (n, maxCap, hint int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bufs {
		maxCap = max(maxCap, cap(b))
	}
	return len(p.bufs), maxCap, p.hint
}
