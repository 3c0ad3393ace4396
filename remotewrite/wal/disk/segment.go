package disk

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/tsdb/wlog"
)

// PageSize is wlog's page size; segments are whole pages.
const PageSize = 32 << 10

// ListSegments returns the numeric file names in dir, ascending.
func ListSegments(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var idx []int
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		k, err := strconv.Atoi(e.Name())
		if err != nil || k < 0 || wlog.SegmentName(dir, k) != filepath.Join(dir, e.Name()) {
			continue
		}
		idx = append(idx, k)
	}
	slices.Sort(idx)
	return idx, nil
}

// CloseGaps renames segments so that their indexes are contiguous, keeping
// their order: wlog refuses to open a directory with gaps, and a queue must
// not refuse to start over a missing file.
func CloseGaps(dir string, idx []int, logger *slog.Logger) ([]int, error) {
	for i := 1; i < len(idx); i++ {
		want := idx[0] + i
		if idx[i] == want {
			continue
		}
		logger.Warn("segment index gap, renumbering", "from", idx[i], "to", want)
		if err := os.Rename(wlog.SegmentName(dir, idx[i]), wlog.SegmentName(dir, want)); err != nil {
			return nil, fmt.Errorf("renumber segment %d: %w", idx[i], err)
		}
		idx[i] = want
	}
	return idx, nil
}

// limitReader reads a segment file up to a limit that may grow, so a reader
// following the active segment never sees a half-written Append.
type limitReader struct {
	f     io.Reader
	pos   int64
	limit int64
}

func (r *limitReader) Read(b []byte) (int, error) {
	if r.pos >= r.limit {
		return 0, io.EOF
	}
	if int64(len(b)) > r.limit-r.pos {
		b = b[:r.limit-r.pos]
	}
	n, err := r.f.Read(b)
	r.pos += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

// Cursor reads the blocks of one segment in order. It uses wlog's
// LiveReader (same framing and CRC checks as wlog.Reader) because it may
// follow the active segment: an EOF there only means "nothing more yet".
type Cursor struct {
	index   int
	seg     *wlog.Segment
	lim     *limitReader
	lr      *wlog.LiveReader
	lastSeq uint64                // last seq decoded, to enforce strictly increasing order
	bad     int                   // records skipped as undecodable or out of order
	err     error                 // terminal read error (corruption)
	data    bool                  // decode payloads (false: index scan only)
	keep    func(seq uint64) bool // with data: whose payloads to decode (nil: all)
	peek    *Block                // read ahead past a group boundary
}

// OpenCursor opens segment index of the queue in dir for reading up to
// limit bytes.
func OpenCursor(dir string, index int, limit int64, logger *slog.Logger) (*Cursor, error) {
	seg, err := wlog.OpenReadSegment(wlog.SegmentName(dir, index))
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", index, err)
	}
	lim := &limitReader{f: seg, limit: limit}
	lr := wlog.NewLiveReader(logger, wlog.NewLiveReaderMetrics(nil), lim)
	return &Cursor{index: index, seg: seg, lim: lim, lr: lr}, nil
}

// next returns the next decodable block, io.EOF when the readable data (up
// to the limit) is exhausted, or the terminal corruption error.
// Undecodable records and records whose seq does not increase are skipped
// and counted in c.bad.
func (c *Cursor) Next() (Block, error) {
	if c.peek != nil {
		b := *c.peek
		c.peek = nil
		return b, nil
	}
	if c.err != nil {
		return Block{}, c.err
	}
	for c.lr.Next() {
		var (
			b   Block
			err error
		)
		rec := c.lr.Record()
		var n int
		b, n, err = DecodeHeader(rec)
		if err == nil && c.data && (c.keep == nil || c.keep(b.Seq)) {
			b.Data = append([]byte(nil), rec[n:]...)
		}
		if err != nil || b.Seq <= c.lastSeq {
			c.bad++
			continue
		}
		c.lastSeq = b.Seq
		return b, nil
	}
	err := c.lr.Err()
	if err == nil || errors.Is(err, io.EOF) {
		return Block{}, io.EOF
	}
	c.err = fmt.Errorf("segment %d at offset %d: %w", c.index, c.lr.Offset(), err)
	return Block{}, c.err
}

// tornTail reports whether bytes that are not zero padding remain between
// what the reader consumed and size: a record cut short by a crash.
func (c *Cursor) TornTail(size int64) (bool, error) {
	off := c.lr.Offset()
	if off >= size {
		return false, nil
	}
	ra := c.seg.SegmentFile.(io.ReaderAt)
	buf := make([]byte, min(size-off, PageSize))
	for off < size {
		n, err := ra.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for _, b := range buf[:n] {
			if b != 0 {
				return true, nil
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, fmt.Errorf("read tail of segment %d: %w", c.index, err)
		}
		off += int64(n)
	}
	return false, nil
}

// Close closes the segment file.
func (c *Cursor) Close() error {
	return c.seg.Close()
}

// After makes the cursor skip blocks up to seq: a block whose seq is not
// above the last one read (or seq) is counted as skipped.
func (c *Cursor) After(seq uint64) { c.lastSeq = seq }

// ReadData makes Next decode payloads too (by default it reads headers
// only, for index scans).
func (c *Cursor) ReadData() { c.data = true }

// Keep makes Next decode the payload only of blocks whose seq keep
// accepts (the others come back without Data): a reader of one tenant
// skips the others' records without copying them.
func (c *Cursor) Keep(keep func(seq uint64) bool) { c.keep = keep }

// SetLimit moves the readable end of the segment to limit bytes (it grows
// while the segment is the one being written).
func (c *Cursor) SetLimit(limit int64) { c.lim.limit = limit }

// Unread makes the next Next return b again (read ahead past a group
// boundary).
func (c *Cursor) Unread(b Block) { c.peek = &b }

// Skipped is the number of records skipped as undecodable or out of order.
func (c *Cursor) Skipped() int { return c.bad }

// Offset is the byte offset reading reached.
func (c *Cursor) Offset() int64 { return c.lr.Offset() }

// Index is the segment's index.
func (c *Cursor) Index() int { return c.index }
