package wal

import (
	"errors"
	"fmt"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// Ack marks every block of the stream <= seq as done (sent, or
// deliberately dropped by the caller), persists that position atomically
// with every other stream's (see doc.go) and deletes the segments whose
// blocks are all done, whatever their stream. seq must not exceed the last
// block Next returned; acking an older position is a no-op. It blocks on
// two fsyncs; safe for concurrent use. On a persistence error the position
// is still advanced in memory (the blocks were sent) but no segment is
// deleted, so a restart resends rather than loses; the stream's next Next
// tries the write again before it hands out more blocks.
//
// With Config.AckInterval the position is only taken in memory (pending
// counts included) and the ack file is written for every stream at once:
// by the stream's next Next that hands out blocks, before it returns them,
// or by a timer at most AckInterval later, whichever comes first. An
// endpoint's tenants acking a round so cost one write and two fsyncs, not
// two per tenant, while a crash can still only resend each stream's last
// acknowledged group, which nothing newer of the stream followed (a
// receiver takes its samples as exact duplicates).
func (st *Stream) Ack(seq uint64) error {
	q := st.q
	if q.cfg.AckInterval > 0 {
		q.mu.Lock()
		defer q.mu.Unlock()
		if err := st.take(seq); err != nil {
			if errors.Is(err, errAcked) {
				return nil
			}
			return err
		}
		q.updateGauges()
		q.scheduleAckFlush()
		return nil
	}
	q.ackMu.Lock()
	defer q.ackMu.Unlock()

	q.mu.Lock()
	if err := st.take(seq); err != nil {
		q.mu.Unlock()
		if errors.Is(err, errAcked) {
			return nil
		}
		return err
	}
	state, snap := q.ackState()
	q.updateGauges()
	q.mu.Unlock()

	if err := disk.WriteAck(q.cfg.Dir, state); err != nil {
		q.mu.Lock()
		q.ackDirty = true // Next tries again before the stream's next send
		q.mu.Unlock()
		return fmt.Errorf("persist ack %d: %w", seq, err)
	}
	q.persisted(snap)
	return nil
}

// persistAcks writes the ack file if it does not hold the stream's
// acknowledged position yet (taken in memory under Config.AckInterval, or
// not written because a write failed). Next calls it before it returns
// blocks, so the position a send earned is on disk before the stream's next
// send: after a SIGKILL (the file is in the page cache) or a power cut (it
// is fsynced) the stream resends at most the group it was sending, never
// groups the receiver took before newer ones. A receiver without an
// out-of-order window (Prometheus, Mimir by default) would refuse those as
// out of order, although they were delivered. A write error is logged and
// the blocks are handed out all the same: a full disk must not stop
// sending; it only widens what a restart resends.
func (st *Stream) persistAcks() {
	q := st.q
	q.mu.Lock()
	need := st.acked > st.persisted
	q.mu.Unlock()
	if need {
		q.flushAcks()
	}
}

// errAcked: the position is not beyond the stream's acked one (no-op).
var errAcked = errors.New("already acked")

// take moves the stream's acked position to seq in memory (q.mu held).
func (st *Stream) take(seq uint64) error {
	q := st.q
	if q.closed || st.detached {
		return ErrClosed
	}
	if seq <= st.acked {
		return errAcked
	}
	if seq > st.readPos {
		return fmt.Errorf("ack %d: beyond the last block handed out (%d)", seq, st.readPos)
	}
	n := 0
	for n < len(st.inflight) && st.inflight[n].seq <= seq {
		st.pendingBlocks--
		st.pendingSamples -= st.inflight[n].samples
		n++
	}
	st.inflight = append(st.inflight[:0], st.inflight[n:]...)
	st.acked = seq
	return nil
}

// persisted records what an ack file write held and deletes the segments
// it made done.
func (q *Queue) persisted(snap map[*Stream]uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for s, acked := range snap {
		s.persisted = max(s.persisted, acked)
	}
	q.trimFront()
	q.updateGauges()
}

// scheduleAckFlush arms the timer that writes the ack file (q.mu held):
// AckInterval after the last write, and never sooner than a tenth of it,
// so the acks of one round's tenants, which come within milliseconds of
// each other, go in one write.
func (q *Queue) scheduleAckFlush() {
	q.ackDirty = true
	if q.ackTimer != nil {
		return
	}
	every := q.cfg.AckInterval
	wait := max(every-time.Since(q.ackLast), every/10)
	q.ackTimer = time.AfterFunc(wait, q.flushAcks)
}

// flushAcks writes the ack file with every stream's position if an Ack
// changed one since the last write (the timer's function, Close's, and
// persistAcks'). A write error is logged; the positions are written again
// at the next flush.
func (q *Queue) flushAcks() {
	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	q.flushAcksLocked()
}

// flushAcksLocked is flushAcks with q.ackMu held.
func (q *Queue) flushAcksLocked() {
	q.mu.Lock()
	if q.ackTimer != nil {
		q.ackTimer.Stop() // this write is the one it was armed for
		q.ackTimer = nil
	}
	if !q.ackDirty || q.acksDone {
		q.mu.Unlock()
		return
	}
	q.ackDirty, q.ackLast = false, time.Now()
	state, snap := q.ackState()
	q.mu.Unlock()
	if err := disk.WriteAck(q.cfg.Dir, state); err != nil {
		// Once per failing spell: Next tries again before every send.
		if !q.ackFailing {
			q.logger.Warn("cannot persist the acknowledged positions; a restart would resend, trying again before each send", "err", err)
		}
		q.ackFailing = true
		q.mu.Lock()
		q.ackDirty = true
		q.mu.Unlock()
		return
	}
	if q.ackFailing {
		q.logger.Info("acknowledged positions persisted again")
		q.ackFailing = false
	}
	q.persisted(snap)
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
