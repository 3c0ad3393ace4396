package wal

import (
	"fmt"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// Ack marks every block <= seq as done (sent, or deliberately dropped by the
// caller), persists that position atomically (see doc.go) and deletes the
// segments whose blocks are all done. seq must not exceed the last block
// Next returned; acking an older position is a no-op. It blocks on two
// fsyncs; safe for concurrent use. On a persistence error the position is
// still advanced in memory (the blocks were sent) but no segment is deleted,
// so a restart resends rather than loses.
func (q *Queue) Ack(seq uint64) error {
	q.ackMu.Lock()
	defer q.ackMu.Unlock()

	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	if seq <= q.acked {
		q.mu.Unlock()
		return nil
	}
	if seq > q.readPos {
		readPos := q.readPos
		q.mu.Unlock()
		return fmt.Errorf("ack %d: beyond the last block handed out (%d)", seq, readPos)
	}
	n := 0
	for n < len(q.inflight) && q.inflight[n].seq <= seq {
		q.pendingBlocks--
		q.pendingSamples -= q.inflight[n].samples
		n++
	}
	q.inflight = append(q.inflight[:0], q.inflight[n:]...)
	q.acked = seq
	state := disk.AckState{Seq: seq, Segment: int64(q.active().index)}
	for _, s := range q.segs {
		if s.lastSeq() > seq {
			state.Segment = int64(s.index)
			break
		}
	}
	q.updateGauges()
	q.mu.Unlock()

	if err := disk.WriteAck(q.cfg.Dir, state); err != nil {
		return fmt.Errorf("persist ack %d: %w", seq, err)
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	q.trimFront()
	q.updateGauges()
	return nil
}
