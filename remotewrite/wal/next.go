package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// Next blocks until at least one block of the stream after the last one
// it returned exists, then returns 1..max consecutive blocks of one Group
// in Seq order (max < 1 counts as 1). After a restart it starts after the
// stream's acked Seq.
// Blocks dropped by the disk budget or lost to corruption are skipped (a
// gap, never a reordering). Available blocks are returned even if ctx is
// already done; otherwise it returns ctx.Err() when ctx ends, or ErrClosed.
//
// It reads from the in-memory tail when that holds the next block, else from
// disk, one segment at a time. Intended for a single reader; concurrent
// calls are serialised and never return the same block twice. The caller
// owns the returned blocks and should Ack them once sent.
//
// Before it returns blocks, the ack file holds every position the stream
// acknowledged so far (see Stream.Ack and doc.go, "Acknowledgements"): a
// block acknowledged before a later one was handed out is never handed
// out again, even after a crash.
func (st *Stream) Next(ctx context.Context, max int) ([]Block, error) {
	out, err := st.next(ctx, max)
	if len(out) > 0 {
		st.persistAcks()
	}
	return out, err
}

// next is Next without persisting the acknowledged positions.
func (st *Stream) next(ctx context.Context, max int) ([]Block, error) {
	if max < 1 {
		max = 1
	}
	q := st.q
	st.readMu.Lock()
	defer st.readMu.Unlock()
	var acc []Block // a group may continue in the next segment or in memory
	for {
		q.mu.Lock()
		if q.closed || st.detached {
			q.mu.Unlock()
			return nil, ErrClosed
		}
		t, onDisk := st.diskTarget()
		if !onDisk {
			if len(st.mem) > 0 && (len(acc) == 0 || st.mem[0].Group == acc[0].Group) {
				acc = append(acc, st.takeMem(max-len(acc))...)
			}
			if len(acc) > 0 {
				q.mu.Unlock()
				return acc, nil
			}
			wake := st.wake
			q.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-wake:
			}
			continue
		}
		q.mu.Unlock()
		var group uint64
		if len(acc) > 0 {
			group = acc[0].Group
		}
		out, stopped, err := st.readDisk(t, max-len(acc), group)
		if err != nil {
			if len(acc) > 0 {
				return acc, nil // the error will repeat on the next call
			}
			return nil, err
		}
		acc = append(acc, out...)
		if stopped && len(acc) > 0 {
			return acc, nil
		}
	}
}

// target is a snapshot of the segment the reader must read next, taken under
// q.mu so that size and blocks agree. blocks are the stream's in it.
type target struct {
	seg      *segment
	size     int64
	blocks   []blockMeta
	readPos  uint64
	memFloor uint64
}

// diskTarget finds the stream's oldest unread block; it must come from
// disk if it is older than everything the memory tail is guaranteed to
// hold. Called with q.mu held.
func (st *Stream) diskTarget() (target, bool) {
	for _, s := range st.q.segs {
		bl := s.blocksOf(st)
		if lastOf(bl) <= st.readPos {
			continue
		}
		i := firstAfter(bl, st.readPos)
		if bl[i].seq >= st.memFloor {
			return target{}, false
		}
		return target{seg: s, size: s.size, blocks: bl, readPos: st.readPos, memFloor: st.memFloor}, true
	}
	return target{}, false
}

// takeMem hands out the head of the memory tail. Called with q.mu held.
func (st *Stream) takeMem(max int) []Block {
	g := st.mem[0].Group
	n := 0
	for n < len(st.mem) && n < max && st.mem[n].Group == g {
		n++
	}
	out := append([]Block(nil), st.mem[:n]...)
	st.handOut(out)
	return out
}

// handOut moves the read position past out. Called with q.mu held.
func (st *Stream) handOut(out []Block) {
	for _, b := range out {
		st.inflight = append(st.inflight, blockMeta{seq: b.Seq, samples: b.Samples, minTs: b.MinTimestamp})
	}
	st.readPos = out[len(out)-1].Seq
	st.trimMem()
}

// readDisk reads up to max blocks of one group (group, if not 0) from t's
// segment through the reader's cursor, without holding q.mu. stopped reports
// that it ended at max or at a group boundary rather than at the end of the
// segment's readable data. When the segment ends without yielding a block
// the index expects, those blocks are lost: they are counted as dropped
// ("corrupt") and skipped.
func (st *Stream) readDisk(t target, max int, group uint64) (out []Block, stopped bool, err error) {
	q := st.q
	c, err := st.cursorFor(t)
	if c == nil {
		return nil, false, err
	}
	out, stopped, rerr := readGroup(c, t, max, group)

	q.mu.Lock()
	defer q.mu.Unlock()
	// The budget may have dropped some of them while q.mu was free.
	n := 0
	for n < len(out) && out[n].Seq <= st.readPos {
		n++
	}
	out = out[n:]
	if len(out) > 0 {
		st.handOut(out)
		return out, stopped, nil
	}
	if rerr == nil {
		return nil, stopped, nil
	}
	st.dropUnreadable(t, rerr)
	if !errors.Is(rerr, io.EOF) || t.seg.closed {
		c.Close()
		st.cur = nil
	}
	return nil, false, nil
}

// cursorFor returns the reader's cursor on t's segment, opening it (and
// closing the one on another segment) when needed, readable up to t.size.
// It returns nil without an error when the segment was deleted by the
// budget meanwhile (the caller looks again).
func (st *Stream) cursorFor(t target) (*disk.Cursor, error) {
	q := st.q
	if st.cur != nil && st.cur.Index() != t.seg.index {
		st.cur.Close()
		st.cur = nil
	}
	if st.cur == nil {
		c, err := disk.OpenCursor(q.cfg.Dir, t.seg.index, t.size, q.logger)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read queue: %w", err)
		}
		c.ReadData()
		st.cur = c
	}
	st.cur.SetLimit(t.size)
	// Other streams' records are decoded without their payload.
	st.cur.Keep(func(seq uint64) bool { return hasSeq(t.blocks, seq) })
	return st.cur, nil
}

// readGroup reads from c up to max blocks of t that are still pending, of
// one group (group, if not 0). stopped reports that it ended at max or at
// a group boundary; rerr is the cursor's error otherwise (io.EOF at the
// end of the readable data).
func readGroup(c *disk.Cursor, t target, max int, group uint64) (out []Block, stopped bool, rerr error) {
	for len(out) < max {
		b, err := c.Next()
		if err != nil {
			return out, false, err
		}
		if b.Seq <= t.readPos || !hasSeq(t.blocks, b.Seq) {
			continue // consumed, or a record of a failed write
		}
		if len(out) > 0 {
			group = out[0].Group
		}
		if group != 0 && b.Group != group {
			c.Unread(b)
			return out, true, nil
		}
		out = append(out, b)
	}
	return out, true, nil
}

// dropUnreadable counts as dropped ("corrupt") the blocks t's segment
// index still expects below memFloor after its cursor ended with rerr:
// the segment yielded everything it could (q.mu held).
func (st *Stream) dropUnreadable(t target, rerr error) {
	q := st.q
	s := t.seg
	from := firstAfter(t.blocks, st.readPos)
	to := firstAfter(t.blocks, t.memFloor-1)
	if from >= to {
		return
	}
	if !s.reported {
		s.reported = true
		q.m.corruptions.Inc()
		q.logger.Warn("corrupt segment, skipping its unreadable blocks", "segment", s.index, "err", rerr, "blocks", to-from)
	}
	st.dropUnread(t.blocks, from, to, reasonCorrupt)
	if s == q.active() {
		// Later appends must not land behind the corruption.
		if err := q.cut(); err != nil {
			q.needCut = true
		}
	}
	q.updateGauges()
}
