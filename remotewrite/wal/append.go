package wal

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/prometheus/tsdb/wlog"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// Append writes blocks durably (as the fsync policy defines) in one wlog
// write, assigns their Seq and Group (written back into the caller's slice)
// and wakes a reader blocked in Next. The Data slices are copied. Afterwards
// it enforces the disk budget, which may drop the oldest unsent blocks.
//
// On a write error (e.g. a full disk) it returns the error and counts all
// the blocks as dropped ("write_error"); the queue stays usable and a later
// Append may succeed. A Samples value outside [0, 2^32) is refused before
// anything is counted. Safe for concurrent use; it blocks on disk I/O.
func (q *Queue) Append(blocks []Block) error {
	if len(blocks) == 0 {
		return nil
	}
	samples := 0
	for i := range blocks {
		if !disk.ValidSamples(blocks[i].Samples) {
			return fmt.Errorf("block %d: samples %d out of range", i, blocks[i].Samples)
		}
		samples += blocks[i].Samples
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	first := q.nextSeq
	q.nextSeq += uint64(len(blocks))
	recs := make([][]byte, len(blocks))
	size := 0
	for i := range blocks {
		blocks[i].Seq, blocks[i].Group = first+uint64(i), first
		recs[i] = disk.EncodeRecord(&blocks[i])
		size += len(recs[i])
	}
	q.m.bytesAppended.Add(float64(size))
	q.m.blocksAppended.Add(float64(len(blocks)))
	q.m.samplesAppended.Add(float64(samples))

	prev, err := q.write(recs)
	if err != nil {
		// The seqs stay burned: part of the batch may be on disk, and the
		// reader only returns blocks the index knows.
		q.m.drop(reasonWriteError, len(blocks), samples)
		q.needCut = true
		q.updateGauges()
		return fmt.Errorf("append blocks %d-%d: %w", first, q.nextSeq-1, err)
	}
	q.index(blocks, recs, prev)
	q.pendingBlocks += len(blocks)
	q.pendingSamples += samples
	q.enforceBudget()
	q.updateGauges()
	close(q.wake)
	q.wake = make(chan struct{})
	return nil
}

// write logs recs and applies the fsync policy; it returns the segment that
// was active before the write. After a failure it starts a new segment
// first, so a half-written record cannot hide later ones.
func (q *Queue) write(recs [][]byte) (*segment, error) {
	if q.needCut {
		if err := q.cut(); err != nil {
			return nil, fmt.Errorf("start new segment after write error: %w", err)
		}
		q.needCut = false
	}
	prev := q.active()
	err := q.w.Log(recs...)
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
		return nil, errors.Join(err, rerr)
	}
	if err == nil && q.cfg.Fsync == FsyncAppend && q.active() != prev {
		// A new segment's directory entry must survive a power cut too.
		err = disk.SyncDir(q.cfg.Dir)
	}
	return prev, err
}

func (q *Queue) active() *segment { return q.segs[len(q.segs)-1] }

// cut closes the active segment (fsynced) and starts a new one.
func (q *Queue) cut() error {
	q.cutMaybe = true
	if _, err := q.w.NextSegmentSync(); err != nil {
		return err
	}
	return q.refresh()
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

// index records the written blocks in the segment index and the memory
// tail. prev was the active segment before the write. If wlog cut segments
// during the write, the new segments are read back to learn exactly which
// blocks landed where: drops are counted per segment, so this must be exact.
func (q *Queue) index(blocks []Block, recs [][]byte, prev *segment) {
	var where []*segment // nil: every block is in prev
	if q.active() != prev {
		where = make([]*segment, len(blocks))
		q.locate(blocks, prev, where)
	}
	for i := range blocks {
		s := prev
		if where != nil && where[i] != nil {
			s = where[i]
		}
		s.blocks = append(s.blocks, blockMeta{seq: blocks[i].Seq, samples: blocks[i].Samples, minTs: blocks[i].MinTimestamp})
		b := blocks[i]
		b.Data = recs[i][disk.RecordHeaderSize:] // the record is our own copy of Data
		q.mem = append(q.mem, b)
		q.memBytes += int64(len(b.Data))
	}
	q.trimMem()
}

// locate reads the segments that follow prev and sets where[i] for every
// block found in them; the others are in prev (records are written in order).
func (q *Queue) locate(blocks []Block, prev *segment, where []*segment) {
	first, last := blocks[0].Seq, blocks[len(blocks)-1].Seq
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
// (the reader then gets them from disk).
func (q *Queue) trimMem() {
	n := 0
	for n < len(q.mem) && (q.mem[n].Seq <= q.readPos || q.memBytes > q.cfg.MemoryBytes) {
		q.memBytes -= int64(len(q.mem[n].Data))
		if q.mem[n].Seq > q.readPos {
			q.memFloor = q.mem[n].Seq + 1
		}
		q.mem[n] = Block{}
		n++
	}
	q.mem = q.mem[n:]
	if len(q.mem) == 0 {
		q.mem = nil // release the backing array
	}
}
