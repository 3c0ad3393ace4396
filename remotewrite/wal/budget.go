package wal

import (
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/prometheus/tsdb/wlog"
)

// enforceBudget deletes the oldest segments while the segments exceed
// MaxSize, counting every block in them that the reader has not been handed
// as dropped. The active segment is never deleted: when it alone is over
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
		q.dropUnread(s, firstAfter(s.blocks, q.readPos), len(s.blocks), reasonBudget)
		q.logger.Debug("deleted segment over disk budget", "segment", s.index, "max_size", q.cfg.MaxSize)
	}
}

// dropUnread counts s.blocks[from:to] as dropped for reason and moves the
// read position past them. Blocks already handed out are not in that range:
// the reader owns those until it acks them.
func (q *Queue) dropUnread(s *segment, from, to int, reason string) {
	if from >= to {
		return
	}
	samples := 0
	for _, b := range s.blocks[from:to] {
		samples += b.samples
	}
	n := to - from
	q.m.drop(reason, n, samples)
	q.pendingBlocks -= n
	q.pendingSamples -= samples
	q.readPos = max(q.readPos, s.blocks[to-1].seq)
	q.trimMem()
}

// trimFront deletes leading closed segments whose blocks are all acked (or
// that hold none). Only leading ones, so that indexes stay contiguous as
// wlog requires.
func (q *Queue) trimFront() {
	for len(q.segs) > 0 {
		s := q.segs[0]
		if !s.closed || s.lastSeq() > q.acked {
			return
		}
		if err := q.removeSegment(s); err != nil {
			q.logger.Warn("cannot delete acknowledged segment", "segment", s.index, "err", err)
			return
		}
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
	return nil
}
