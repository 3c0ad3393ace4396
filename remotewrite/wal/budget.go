package wal

import (
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/prometheus/tsdb/wlog"
)

// enforceBudget deletes the oldest segments while the segments exceed
// MaxSize, counting every block in them that its stream's reader has not
// been handed as dropped on that stream, whatever the stream: a stream
// that is held back loses its oldest blocks first. The active segment is never deleted: when it alone is over
// budget it is cut first so that it can go. Deletion errors are logged and
// end this round; the next Append retries.
func (q *Queue) enforceBudget() {
	if q.cfg.MaxSize <= 0 {
		return
	}
	for q.diskBytes() > q.cfg.MaxSize {
		if len(q.segs) == 1 {
			if err := q.cut(); err != nil {
				q.logger.Warn("cannot cut over-budget segment", "err", err)
				q.needCut = true
				return
			}
			continue
		}
		s := q.segs[0]
		if err := q.removeSegment(s); err != nil {
			q.logger.Warn("cannot delete segment over disk budget", "segment", s.index, "err", err)
			return
		}
		for _, p := range s.parts {
			p.st.dropUnread(p.blocks, firstAfter(p.blocks, p.st.readPos), len(p.blocks), reasonBudget)
		}
		q.forgetUnused(s) // after the drops are counted on their states
		q.logger.Debug("deleted segment over disk budget", "segment", s.index, "max_size", q.cfg.MaxSize)
	}
}

// dropUnread counts blocks[from:to] (the stream's) as dropped for reason
// and moves the read position past them. Blocks already handed out are not
// in that range: the reader owns those until it acks them (q.mu held).
func (st *Stream) dropUnread(blocks []blockMeta, from, to int, reason string) {
	if from >= to {
		return
	}
	samples := 0
	for _, b := range blocks[from:to] {
		samples += b.samples
	}
	n := to - from
	st.m.drop(reason, n, samples)
	st.pendingBlocks -= n
	st.pendingSamples -= samples
	st.readPos = max(st.readPos, blocks[to-1].seq)
	st.trimMem()
}

// trimFront deletes leading closed segments whose blocks are all acked
// as the ack file says, for every stream (or that hold none). Only leading
// ones, so that indexes stay contiguous as wlog requires.
func (q *Queue) trimFront() {
	for len(q.segs) > 0 {
		s := q.segs[0]
		if !s.closed {
			return
		}
		for _, p := range s.parts {
			if lastOf(p.blocks) > p.st.persisted {
				return
			}
		}
		if err := q.removeSegment(s); err != nil {
			q.logger.Warn("cannot delete acknowledged segment", "segment", s.index, "err", err)
			return
		}
		q.forgetUnused(s)
	}
}

// removeSegment deletes the first segment's file and index entry.
func (q *Queue) removeSegment(s *segment) error {
	if q.segs[0] != s {
		return fmt.Errorf("segment %d is not the oldest", s.index)
	}
	if err := os.Remove(wlog.SegmentName(q.cfg.Dir, s.index)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove segment %d: %w", s.index, err)
	}
	q.segs[0] = nil
	q.segs = q.segs[1:]
	for _, p := range s.parts {
		p.st.segRefs--
	}
	return nil
}

// forgetUnused forgets the states without a reader that had blocks in
// the removed segment s and have none on disk any more: nothing of them
// is left to keep a position for (q.mu held).
func (q *Queue) forgetUnused(s *segment) {
	for _, p := range s.parts {
		if p.st.segRefs == 0 && p.st.detached && p.st != q.def {
			q.forget(p.st)
		}
	}
}
