package scrape

import "sync"

// Buffers pools scrape buffers across the sandboxes of a round, at most one
// per concurrency slot. Between rounds (Release) they are held only by a
// sync.Pool, which lets them go once two GC cycles passed without a round
// taking them back: a round's buffers (up to concurrency times the
// exposition's size, ~2 MB for 32 slots of a shim's 58 KiB) are not held
// while pull requests keep the GC busy, and cost no allocation while
// rounds follow each other with few collections between them (push only).
// Safe for concurrent use.
type Buffers struct {
	mu   sync.Mutex
	max  int
	bufs [][]byte
	idle sync.Pool // *[]byte: buffers released between rounds
	// hint is the capacity of a new buffer: the mean body of the last
	// round that had one, plus an eighth (0: none yet, the scraper
	// grows its own).
	hint       int
	sum, count int // bodies put since the last Release
}

// NewBuffers returns a pool that keeps at most n buffers.
func NewBuffers(n int) *Buffers { return &Buffers{max: n} }

// Get returns a scrape buffer from the pool, else one released by an
// earlier round, else a new one sized for the last round's mean body,
// else nil (the scraper allocates one).
func (p *Buffers) Get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.bufs)
	if n == 0 {
		if b, _ := p.idle.Get().(*[]byte); b != nil {
			return (*b)[:0]
		}
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

// Release hands the pooled buffers to the GC's discretion (a sync.Pool),
// once a round's scrapes are done; the next round's new buffers get the
// capacity of this round's mean body (plus an eighth), so that a typical
// exposition fits without regrowing and one huge exposition does not size
// them all.
func (p *Buffers) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, b := range p.bufs {
		p.idle.Put(&b)
		p.bufs[i] = nil
	}
	p.bufs = p.bufs[:0]
	if p.count > 0 {
		mean := p.sum / p.count
		p.hint = mean + mean/8
	}
	p.sum, p.count = 0, 0
}

// Pooled returns how many buffers the pool holds for the round (not those
// released to the GC's discretion) and the largest capacity among them,
// and the capacity a new buffer gets.
func (p *Buffers) Pooled() (n, maxCap, hint int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bufs {
		maxCap = max(maxCap, cap(b))
	}
	return len(p.bufs), maxCap, p.hint
}
