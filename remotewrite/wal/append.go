package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/prometheus/tsdb/wlog"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// Append writes blocks durably (as the fsync policy defines) as one group
// of the plain queue's stream (Tenant ""): AppendGroups with one group.
func (q *Queue) Append(blocks []Block) error {
	for i := range blocks {
		blocks[i].Tenant = ""
	}
	return q.AppendGroups([][]Block{blocks})
}

// AppendGroups writes every block of groups durably (as the fsync policy
// defines) in one wlog write, so one fsync covers them all, assigns their
// Seq and Group (written back into the caller's slices: Group is the Seq
// of the first block of its inner slice) and wakes the readers blocked in
// Next. Each inner slice is one group of one stream: its blocks must have
// the same Tenant (at most disk.MaxTenantLength bytes); a tenant without a
// reader gets a stream state that keeps its blocks for a later reader. The
// Data slices are copied. Afterwards it enforces the disk budget, which
// may drop the oldest unsent blocks of any stream.
//
// On a write error (e.g. a full disk) it returns the error and the blocks
// are dropped ("write_error"): their seqs are burned, and the queue stays
// usable, a later call may succeed. Records of a failed write may have
// reached the disk (a failed fsync, a partial write, or wlog flushing its
// page later), where the next Open would find and send them; so they are
// counted dropped only once they are gone: the segment is cut, the failed
// write's segments are truncated back to their size before it and fsynced
// (discardFailed). Until that succeeds (a cut or truncate that fails is
// retried at every later call and at Close) they are neither pending nor
// counted; a crash meanwhile leaves them to the next Open, which sends
// what is on disk. A Samples value outside [0, 2^32)
// or a bad tenant is refused before anything is counted. Safe for
// concurrent use; it blocks on disk I/O.
func (q *Queue) AppendGroups(groups [][]Block) error {
	n := 0
	for g, blocks := range groups {
		for i := range blocks {
			if !disk.ValidSamples(blocks[i].Samples) {
				return fmt.Errorf("group %d block %d: samples %d out of range", g, i, blocks[i].Samples)
			}
			if blocks[i].Tenant != blocks[0].Tenant || len(blocks[i].Tenant) > disk.MaxTenantLength {
				return fmt.Errorf("group %d block %d: tenant %q: one tenant of at most %d bytes per group", g, i, blocks[i].Tenant, disk.MaxTenantLength)
			}
		}
		n += len(blocks)
	}
	if n == 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	first := q.nextSeq
	owners := make([]*Stream, 0, n) // the stream of each block
	counts := make([]appendCount, 0, len(groups))
	for _, blocks := range groups {
		if len(blocks) == 0 {
			continue
		}
		st := q.streamOf(blocks[0].Tenant)
		group, size, samples := q.nextSeq, 0, 0
		for i := range blocks {
			blocks[i].Seq, blocks[i].Group = q.nextSeq, group
			q.nextSeq++
			owners = append(owners, st)
			size += disk.RecordSize(&blocks[i])
			samples += blocks[i].Samples
		}
		counts = append(counts, appendCount{st, size, len(blocks), samples})
	}

	// The blocks are counted appended once the write's outcome is known,
	// next to the pending gauge's update (success) or the write_error drop
	// (failure): counted before the write, a scrape during the write and
	// fsync (milliseconds, more on a loaded disk) read them appended but
	// neither pending nor dropped.
	prev, logged, err := q.write(groups)
	if err != nil {
		q.countAppended(counts)
		// The seqs stay burned: part of the batch may be on disk, and the
		// reader only returns blocks the index knows.
		var drops []failedDrop
		for _, blocks := range groups {
			if len(blocks) > 0 {
				drops = append(drops, failedDrop{q.streamOf(blocks[0].Tenant), len(blocks), sumSamples(blocks)})
			}
		}
		q.needCut = true
		if logged {
			// Counted once the records are gone from disk.
			q.failed[len(q.failed)-1].drops = drops
			if cerr := q.cut(); cerr == nil {
				q.needCut = false
			}
			q.discardFailed()
		} else {
			for _, d := range drops {
				q.dropOn(d.st, reasonWriteError, d.blocks, d.samples)
			}
		}
		q.updateGauges()
		return fmt.Errorf("append blocks %d-%d: %w", first, q.nextSeq-1, err)
	}
	q.index(groups, owners, prev, first)
	q.countAppended(counts) // before the budget may drop them
	q.enforceBudget()
	q.updateGauges()
	// The owners, not q.streams: the budget may have dropped a detached
	// stream's last blocks, and its state with them.
	var last *Stream
	for _, st := range owners {
		if st != last {
			close(st.wake)
			st.wake = make(chan struct{})
			last = st
		}
	}
	return nil
}

// appendCount is what one group adds to its stream's appended counters.
type appendCount struct {
	st                     *Stream
	bytes, blocks, samples int
}

// countAppended adds counts to the appended counters of the metrics that
// stand for each stream's tenant now (as dropOn: the budget may have
// forgotten a stream without a reader during the Append). q.mu held.
func (q *Queue) countAppended(counts []appendCount) {
	for _, c := range counts {
		m := q.metricsOf(c.st)
		m.bytesAppended.Add(float64(c.bytes))
		m.blocksAppended.Add(float64(c.blocks))
		m.samplesAppended.Add(float64(c.samples))
	}
}

func sumSamples(blocks []Block) int {
	n := 0
	for i := range blocks {
		n += blocks[i].Samples
	}
	return n
}

// logChunk is how many bytes of records the queue encodes before it
// hands them to wlog: its encoding buffer is reused across appends and
// holds about this much (or one larger record), however big a round is.
const logChunk = 256 << 10

// write logs the records of groups' blocks and applies the fsync policy; it
// returns the segment that was active before the write and whether records
// were handed to wlog (on an error: whether some may be on disk, then noted
// in q.failed). After a failure it starts a new segment first, so a
// half-written record cannot hide later ones, and discards what the failed
// write left.
func (q *Queue) write(groups [][]Block) (*segment, bool, error) {
	if q.needCut {
		if err := q.cut(); err != nil {
			return nil, false, fmt.Errorf("start new segment after write error: %w", err)
		}
		q.needCut = false
	}
	q.discardFailed()
	prev := q.active()
	size := prev.size
	err := q.log(groups)
	q.cutMaybe = q.cutMaybe || err != nil
	if err == nil && q.cfg.Fsync == FsyncAppend {
		start := time.Now()
		err = q.w.Sync()
		q.m.fsyncDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			err = fmt.Errorf("fsync segment: %w", err)
		}
	}
	if rerr := q.refresh(); rerr != nil {
		err = errors.Join(err, rerr)
	} else if err == nil && q.cfg.Fsync == FsyncAppend && q.active() != prev {
		// A new segment's directory entry must survive a power cut too.
		err = disk.SyncDir(q.cfg.Dir)
	}
	if err != nil {
		q.failed = append(q.failed, &failedWrite{seg: prev.index, size: size})
	}
	return prev, true, err
}

// failedWrite is what a failed write may have left on disk: records from
// byte size of segment seg on, and every record of the segments after it
// up to end (exclusive), the first segment started after the failure (0:
// no cut yet, wlog may still write the records it holds).
type failedWrite struct {
	seg   int
	size  int64
	end   int
	drops []failedDrop // counted "write_error" once discarded
}

type failedDrop struct {
	st              *Stream
	blocks, samples int
}

// truncateFile cuts the file at path to size and fsyncs it; a variable so
// that tests can make it fail.
var truncateFile = func(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// discardFailed removes from disk what the failed writes left, once wlog
// writes into a later segment, and then counts their blocks dropped
// ("write_error"); a failure is logged and retried at the next call (every
// write and Close). A segment already deleted holds nothing any more
// (q.mu held).
func (q *Queue) discardFailed() {
	keep := q.failed[:0]
	for _, f := range q.failed {
		if f.end == 0 {
			keep = append(keep, f)
			continue
		}
		var err error
		for k := f.seg; k < f.end && err == nil; k++ {
			size := int64(0)
			if k == f.seg {
				size = f.size
			}
			if err = truncateFile(wlog.SegmentName(q.cfg.Dir, k), size); errors.Is(err, os.ErrNotExist) {
				err = nil
				continue
			}
			for _, s := range q.segs {
				if s.index == k && err == nil {
					s.size = size
				}
			}
		}
		if err != nil {
			q.logger.Warn("cannot discard the records of a failed write; retrying at the next append or Close", "segment", f.seg, "err", err)
			keep = append(keep, f)
			continue
		}
		for _, d := range f.drops {
			q.dropOn(d.st, reasonWriteError, d.blocks, d.samples)
		}
	}
	clear(q.failed[len(keep):])
	q.failed = keep
}

// log encodes the records of groups' blocks into the queue's reused buffer
// and writes them with wlog about logChunk bytes at a time (wlog copies
// them into its page buffer). It stops at the first error. q.mu held.
func (q *Queue) log(groups [][]Block) error {
	buf, recs := q.encBuf[:0], q.encRecs[:0]
	defer func() {
		clear(recs)
		q.encBuf, q.encRecs = buf[:0], recs[:0]
	}()
	for _, blocks := range groups {
		for i := range blocks {
			if size := disk.RecordSize(&blocks[i]); len(buf) > 0 && len(buf)+size > max(cap(buf), logChunk) {
				if err := q.w.Log(recs...); err != nil {
					return err
				}
				buf, recs = buf[:0], recs[:0]
			}
			start := len(buf)
			buf = disk.AppendRecord(buf, &blocks[i])
			recs = append(recs, buf[start:])
		}
	}
	return q.w.Log(recs...)
}

func (q *Queue) active() *segment { return q.segs[len(q.segs)-1] }

// cut closes the active segment (fsynced) and starts a new one; the
// failed writes before it end there.
func (q *Queue) cut() error {
	q.cutMaybe = true
	if _, err := q.w.NextSegmentSync(); err != nil {
		return err
	}
	if err := q.refresh(); err != nil {
		return err
	}
	for _, f := range q.failed {
		if f.end == 0 {
			f.end = q.active().index
		}
	}
	return nil
}

// refresh brings the segment index in line with the writer: segments wlog
// started (it cuts by itself when a record does not fit) and sizes. wlog
// tells the active segment only by listing the directory
// (LastSegmentAndOffset), a readdir per Append; so after a clean write
// refresh looks for the next segment's file instead (wlog creates it when
// it cuts) and takes the active segment's size from a stat: a successful
// Log ends with the partial page written out, so the file size is wlog's
// offset. After a failed write (sizes unknown) it asks wlog.
func (q *Queue) refresh() error {
	if !q.cutMaybe {
		if _, err := os.Stat(wlog.SegmentName(q.cfg.Dir, q.active().index+1)); errors.Is(err, os.ErrNotExist) {
			fi, err := os.Stat(wlog.SegmentName(q.cfg.Dir, q.active().index))
			if err == nil {
				q.active().size = fi.Size()
				return nil
			}
		}
	}
	q.cutMaybe = false
	seg, off, err := q.w.LastSegmentAndOffset()
	if err != nil {
		return fmt.Errorf("locate active segment: %w", err)
	}
	for last := q.active(); last.index < seg; last = q.active() {
		last.closed = true
		fi, err := os.Stat(wlog.SegmentName(q.cfg.Dir, last.index))
		if err != nil {
			return fmt.Errorf("stat segment %d: %w", last.index, err)
		}
		last.size = fi.Size()
		q.segs = append(q.segs, &segment{index: last.index + 1})
	}
	q.active().size = int64(off)
	return nil
}

// index records the written blocks (owners[i] is the stream of the i-th
// block over groups; seqs from first on) in the segment index, the
// streams' pending counts and the memory tails of the streams that keep
// one (a copy of Data). prev was the active segment before the write. If
// wlog cut segments during the write, the new segments are read back to
// learn exactly which blocks landed where: drops are counted per segment,
// so this must be exact.
func (q *Queue) index(groups [][]Block, owners []*Stream, prev *segment, first uint64) {
	var where []*segment // nil: every block is in prev
	if q.active() != prev {
		where = make([]*segment, len(owners))
		q.locate(first, first+uint64(len(owners))-1, prev, where)
	}
	i := 0
	for _, blocks := range groups {
		for _, b := range blocks {
			s, st := prev, owners[i]
			if where != nil && where[i] != nil {
				s = where[i]
			}
			s.add(st, blockMeta{seq: b.Seq, samples: b.Samples, minTs: b.MinTimestamp})
			st.pendingBlocks++
			st.pendingSamples += b.Samples
			if st.detached || st.memLimit == 0 {
				// No tail: the reader reads the block back from the
				// segment (the page cache, as it was just written).
				st.memFloor = max(st.memFloor, b.Seq+1)
			} else {
				b.Data = bytes.Clone(b.Data)
				st.mem = append(st.mem, b)
				st.memBytes += int64(len(b.Data))
			}
			i++
		}
	}
	var last *Stream
	for _, st := range owners {
		if st != last {
			st.trimMem()
			last = st
		}
	}
}

// locate reads the segments that follow prev and sets where[seq-first] for
// every block in [first, last] found in them; the others are in prev
// (records are written in order).
func (q *Queue) locate(first, last uint64, prev *segment, where []*segment) {
	for _, s := range q.segs {
		if s.index <= prev.index {
			continue
		}
		c, err := disk.OpenCursor(q.cfg.Dir, s.index, s.size, q.logger)
		if err != nil {
			q.logger.Warn("cannot read back new segment; its blocks are indexed in the previous one", "segment", s.index, "err", err)
			continue
		}
		c.After(first - 1)
		for {
			b, err := c.Next()
			if err != nil {
				break
			}
			if b.Seq <= last {
				where[b.Seq-first] = s
			}
		}
		c.Close()
	}
}

// trimMem drops consumed blocks and, past the memory budget, the oldest ones
// (the reader then gets them from disk). Called with q.mu held.
func (st *Stream) trimMem() {
	n := 0
	for n < len(st.mem) && (st.mem[n].Seq <= st.readPos || st.memBytes > st.memLimit) {
		st.memBytes -= int64(len(st.mem[n].Data))
		if st.mem[n].Seq > st.readPos {
			st.memFloor = st.mem[n].Seq + 1
		}
		st.mem[n] = Block{}
		n++
	}
	st.mem = st.mem[n:]
	if len(st.mem) == 0 {
		st.mem = nil // release the backing array
	}
}
