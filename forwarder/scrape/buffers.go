package scrape

import "sync"

// Buffers pools scrape buffers across sandboxes and rounds, at most one per
// concurrency slot. Safe for concurrent use.
type Buffers struct {
	mu   sync.Mutex
	max  int
	bufs [][]byte
}

// NewBuffers returns a pool that keeps at most n buffers.
func NewBuffers(n int) *Buffers { return &Buffers{max: n} }

// Get returns a scrape buffer from the pool, or nil (the scraper
// allocates one).
func (p *Buffers) Get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.bufs)
	if n == 0 {
		return nil
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
	if b == nil || cap(b) > 4*len(b)+64<<10 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bufs) < p.max {
		p.bufs = append(p.bufs, b[:0])
	}
}

// Pooled returns how many buffers the pool holds and the largest capacity
// among them.
func (p *Buffers) Pooled() (n, maxCap int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bufs {
		maxCap = max(maxCap, cap(b))
	}
	return len(p.bufs), maxCap
}
