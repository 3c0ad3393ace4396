package wal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/prometheus/prometheus/tsdb/wlog"
)

// blockMeta is what the queue remembers of a block on disk: enough to count
// drops exactly without reading the segment again.
type blockMeta struct {
	seq     uint64
	samples int
	minTs   int64 // oldest sample (ms), for the age of the oldest pending block
}

// segment is the in-memory index of one segment file. blocks only grows by
// append and its elements are never modified, so a reader may use a slice
// header copied under the queue lock without holding it.
type segment struct {
	index    int
	size     int64 // bytes on disk (active: bytes written so far)
	closed   bool  // no more writes; size is final
	blocks   []blockMeta
	reported bool // corruption already counted and logged
}

func (s *segment) lastSeq() uint64 {
	if len(s.blocks) == 0 {
		return 0
	}
	return s.blocks[len(s.blocks)-1].seq
}

// firstAfter returns the position of the first block with seq > after.
func firstAfter(blocks []blockMeta, after uint64) int {
	return sort.Search(len(blocks), func(i int) bool { return blocks[i].seq > after })
}

func hasSeq(blocks []blockMeta, seq uint64) bool {
	i := firstAfter(blocks, seq-1)
	return i < len(blocks) && blocks[i].seq == seq
}

// listSegmentIndexes returns the numeric file names in dir, ascending.
func listSegmentIndexes(dir string) ([]int, error) {
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

// closeGaps renames segments so that their indexes are contiguous, keeping
// their order: wlog refuses to open a directory with gaps, and a queue must
// not refuse to start over a missing file.
func closeGaps(dir string, idx []int, logger *slog.Logger) ([]int, error) {
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

// cursor reads the blocks of one segment in order. It uses wlog's
// LiveReader (same framing and CRC checks as wlog.Reader) because it may
// follow the active segment: an EOF there only means "nothing more yet".
type cursor struct {
	index   int
	seg     *wlog.Segment
	lim     *limitReader
	lr      *wlog.LiveReader
	lastSeq uint64 // last seq decoded, to enforce strictly increasing order
	bad     int    // records skipped as undecodable or out of order
	err     error  // terminal read error (corruption)
	data    bool   // decode payloads (false: index scan only)
	peek    *Block // read ahead past a group boundary
}

func openCursor(dir string, index int, limit int64, logger *slog.Logger) (*cursor, error) {
	seg, err := wlog.OpenReadSegment(wlog.SegmentName(dir, index))
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", index, err)
	}
	lim := &limitReader{f: seg, limit: limit}
	lr := wlog.NewLiveReader(logger, wlog.NewLiveReaderMetrics(nil), lim)
	return &cursor{index: index, seg: seg, lim: lim, lr: lr}, nil
}

// next returns the next decodable block, io.EOF when the readable data (up
// to the limit) is exhausted, or the terminal corruption error.
// Undecodable records and records whose seq does not increase are skipped
// and counted in c.bad.
func (c *cursor) next() (Block, error) {
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
		if c.data {
			b, err = decodeRecord(c.lr.Record())
		} else {
			b, _, err = decodeHeader(c.lr.Record())
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
func (c *cursor) tornTail(size int64) (bool, error) {
	off := c.lr.Offset()
	if off >= size {
		return false, nil
	}
	ra := c.seg.SegmentFile.(io.ReaderAt)
	buf := make([]byte, min(size-off, pageSize))
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

func (c *cursor) close() error {
	return c.seg.Close()
}
