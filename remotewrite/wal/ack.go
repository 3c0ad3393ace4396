package wal

import (
	"fmt"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// Ack marks every block of the stream <= seq as done (sent, or
// deliberately dropped by the caller), persists that position atomically
// with every other stream's (see doc.go) and deletes the segments whose
// blocks are all done, whatever their stream. seq must not exceed the last
// block Next returned; acking an older position is a no-op. It blocks on
// two fsyncs; safe for concurrent use. On a persistence error the position
// is still advanced in memory (the blocks were sent) but no segment is
// deleted, so a restart resends rather than loses.
func (st *Stream) Ack(seq uint64) error {
	q := st.q
	q.ackMu.Lock()
	defer q.ackMu.Unlock()

	q.mu.Lock()
	if q.closed || st.detached {
		q.mu.Unlock()
		return ErrClosed
	}
	if seq <= st.acked {
		q.mu.Unlock()
		return nil
	}
	if seq > st.readPos {
		readPos := st.readPos
		q.mu.Unlock()
		return fmt.Errorf("ack %d: beyond the last block handed out (%d)", seq, readPos)
	}
	n := 0
	for n < len(st.inflight) && st.inflight[n].seq <= seq {
		st.pendingBlocks--
		st.pendingSamples -= st.inflight[n].samples
		n++
	}
	st.inflight = append(st.inflight[:0], st.inflight[n:]...)
	st.acked = seq
	state, snap := q.ackState()
	q.updateGauges()
	q.mu.Unlock()

	if err := disk.WriteAck(q.cfg.Dir, state); err != nil {
		return fmt.Errorf("persist ack %d: %w", seq, err)
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	for s, acked := range snap {
		s.persisted = max(s.persisted, acked)
	}
	q.trimFront()
	q.updateGauges()
	return nil
}

// ackState is what the ack file must say now, and the acked position of
// each stream it records (q.mu held). Seq (the floor) is the lowest acked
// position of the streams with blocks on disk, each tenant above it gets an
// entry; a plain queue's file so stays version 1 (no entries).
func (q *Queue) ackState() (disk.AckState, map[*Stream]uint64) {
	snap := make(map[*Stream]uint64, len(q.streams))
	var floor, top uint64
	first := true
	for _, st := range q.streams {
		snap[st] = st.acked
		top = max(top, st.acked)
		if st.segRefs > 0 && (first || st.acked < floor) {
			floor, first = st.acked, false
		}
	}
	if first {
		floor = top // no blocks on disk: every stream is done
	}
	a := disk.AckState{Seq: floor, Segment: int64(q.active().index)}
	for st, acked := range snap {
		if acked > floor && st.segRefs > 0 {
			if a.Tenants == nil {
				a.Tenants = map[string]uint64{}
			}
			a.Tenants[st.tenant] = acked
		}
	}
seg:
	for _, s := range q.segs {
		for _, p := range s.parts {
			if lastOf(p.blocks) > p.st.acked {
				a.Segment = int64(s.index)
				break seg
			}
		}
	}
	return a, snap
}
