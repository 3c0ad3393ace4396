package httpapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
)

// The merged exposition of a big node is tens of MiB; compressing it per
// request made N gzip clients cost N compressions of the same bytes. The
// unfiltered rendering of one snapshot is compressed once, into raw deflate
// blocks that end in a sync flush (byte-aligned, not final), and every gzip
// response is assembled from them as one ordinary gzip member: a fixed
// header, the shared blocks, a final deflate stream of the request's own
// self-metrics, and a trailer whose CRC-32 continues the shared part's.
// Deflate streams concatenate this way because no back-reference of the
// second stream reaches before its own start (pigz builds its output the
// same way), so every gzip reader accepts the result. gzhttp (see
// newGzipWrap) negotiates and compresses every other response; it cannot
// share one compression between requests, and pgzip's parallel writer
// cannot either (nor leave a stream open for the per-request tail), so this
// cache stays, on klauspost's flate.

// gzipChunk is how much text one compression job takes. Chunks compress
// independently (no shared dictionary), so the ratio loss is one window
// per chunk: about 1 % at 256 KiB (BenchmarkMetricsGzip). The chunks in
// flight are the memory a compression holds besides its output: a few
// chunks, so ~1 MiB on a 2-core node instead of ~5 MiB at 1 MiB.
const gzipChunk = 256 << 10

// gzipWorkers is how many goroutines compress one snapshot: every core but
// one, at least one, so a big compression leaves room for the scrapes.
func gzipWorkers() int { return max(1, runtime.GOMAXPROCS(0)-1) }

// gzipHeader is a gzip member header: no name, no mtime, OS unknown.
var gzipHeader = [10]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// gzipBody is one snapshot's compressed unfiltered exposition.
type gzipBody struct {
	done chan struct{} // closed once the fields below are set
	// deflate is the sync-flushed, non-final deflate blocks of each chunk,
	// in order, each in a slice of its exact size: nothing is copied into
	// one buffer (which would hold the output twice while it is built).
	deflate [][]byte
	crc     uint32 // CRC-32 (IEEE) of the uncompressed text
	size    int64  // length of the uncompressed text
	err     error
}

// held is the bytes the body keeps (tests check it is what it needs).
func (b *gzipBody) held() (length, capacity int) {
	for _, d := range b.deflate {
		length += len(d)
		capacity += cap(d)
	}
	return length, capacity
}

// gzipCache holds the compressed rendering of the latest snapshot seen.
// Concurrent requests on that snapshot share one compression.
type gzipCache struct {
	workers int
	flate   *sync.Pool // *flate.Writer at BestSpeed

	mu    sync.Mutex
	round uint64
	body  *gzipBody
}

// get returns the compressed rendering of snapshot round, computing it with
// render on the first call for that round. A request for an older snapshot
// than the cached one compresses on its own without replacing the cache.
// It returns nil when ctx ends while another request is compressing.
func (c *gzipCache) get(ctx context.Context, round uint64, render func(io.Writer) error) *gzipBody {
	c.mu.Lock()
	if b := c.body; b != nil && c.round == round {
		c.mu.Unlock()
		select {
		case <-b.done:
			return b
		case <-ctx.Done():
			return nil
		}
	}
	b := &gzipBody{done: make(chan struct{})}
	if c.body == nil || round > c.round {
		c.round, c.body = round, b
	}
	c.mu.Unlock()
	b.deflate, b.crc, b.size, b.err = c.compress(render)
	close(b.done)
	return b
}

// job is one chunk in flight between the renderer and a worker.
type job struct{ in, out []byte }

// compress renders into fixed-size chunks and deflates them on c.workers
// goroutines, which it waits for, and returns the chunks' deflate blocks in
// order. Memory is bounded by the chunks in flight, one scratch output per
// worker, and the compressed output.
func (c *gzipCache) compress(render func(io.Writer) error) ([][]byte, uint32, int64, error) {
	jobs := make(chan *job, c.workers)
	free := make(chan []byte, c.workers+1) // recycled input chunks
	var wg sync.WaitGroup
	for range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			zw := c.flate.Get().(*flate.Writer)
			defer c.flate.Put(zw)
			var sink byteSink // grows to one chunk's output, reused
			for j := range jobs {
				sink.b = sink.b[:0]
				zw.Reset(&sink)
				_, _ = zw.Write(j.in) // byteSink never fails
				_ = zw.Flush()
				j.out = bytes.Clone(sink.b)
				select {
				case free <- j.in[:0]:
				default:
				}
				j.in = nil
			}
		}()
	}
	cw := &chunker{jobs: jobs, free: free}
	err := render(cw)
	if err == nil {
		cw.flush()
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return nil, 0, 0, err
	}
	out := make([][]byte, len(cw.order))
	for i, j := range cw.order {
		out[i] = j.out
	}
	return out, cw.crc, cw.size, nil
}

// chunker cuts the rendered text into jobs, computing its CRC on the way.
type chunker struct {
	jobs  chan<- *job
	free  chan []byte
	cur   []byte
	order []*job
	crc   uint32
	size  int64
}

func (c *chunker) Write(p []byte) (int, error) {
	n := len(p)
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
	c.size += int64(n)
	for len(p) > 0 {
		if c.cur == nil {
			select {
			case c.cur = <-c.free:
			default:
				c.cur = make([]byte, 0, gzipChunk)
			}
		}
		k := min(len(p), gzipChunk-len(c.cur))
		c.cur = append(c.cur, p[:k]...)
		p = p[k:]
		if len(c.cur) == gzipChunk {
			c.flush()
		}
	}
	return n, nil
}

func (c *chunker) flush() {
	if len(c.cur) == 0 {
		return
	}
	j := &job{in: c.cur}
	c.cur = nil
	c.order = append(c.order, j)
	c.jobs <- j // blocks while every worker is busy: bounds memory
}

// byteSink is an io.Writer appending to a slice.
type byteSink struct{ b []byte }

func (s *byteSink) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// writeGzip writes one gzip member: body's shared blocks, then tail
// compressed as the final deflate stream. The tail (kata-monitor's own
// families, tens of KiB) goes through klauspost's stateless writer, which
// keeps no window or tables between writes: a request holds no
// compressor state (a pooled BestSpeed writer is ~1 MiB, one per
// concurrent gzip client). A write error is the client leaving; it is
// returned for logging only.
func writeGzip(w io.Writer, body *gzipBody, tail []byte) error {
	if _, err := w.Write(gzipHeader[:]); err != nil {
		return err
	}
	for _, d := range body.deflate {
		if _, err := w.Write(d); err != nil {
			return err
		}
	}
	zw := flate.NewStatelessWriter(w)
	if _, err := zw.Write(tail); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	var tr [8]byte
	binary.LittleEndian.PutUint32(tr[:4], crc32.Update(body.crc, crc32.IEEETable, tail))
	binary.LittleEndian.PutUint32(tr[4:], uint32(body.size+int64(len(tail)))) // ISIZE is mod 2^32
	_, err := w.Write(tr[:])
	return err
}
