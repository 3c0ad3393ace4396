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
// With Config.AckInterval (tenant streams) the position is written to the
// fast ack file before Ack returns (every stream's, one pwrite, no fsync;
// it may wait for a write of the ack file in progress), and to the ack
// file (fsynced) for every stream at once by a timer at most AckInterval
// later and by Close; when the fast write fails, the stream's next Next
// or Close writes the ack file. Acks so cost no fsync, a SIGKILL resends
// no acknowledged group, and a power cut at most the groups acknowledged
// in the last AckInterval (a receiver without an out-of-order window may
// refuse those: counted, never lost). A segment is deleted only once the
// ack file, not the fast one, covers it.
func (st *Stream) Ack(seq uint64) error {
	q := st.q
	if q.cfg.AckInterval > 0 {
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
		st.m.pendingSamples.Set(float64(st.pendingSamples)) // the only gauge take moves
		q.scheduleAckFlush()
		q.mu.Unlock()
		if q.fast != nil {
			// On failure (logged) the stream's next Next tries again,
			// falling back to the ack file.
			q.writeFastLocked()
		}
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
	q.ackSum = disk.AckSum(state)
	q.persisted(snap)
	return nil
}

// persistAcks makes sure the stream's acknowledged position is written
// (taken in memory under Config.AckInterval, or not written because a
// write failed). Next calls it before it returns blocks, so the position
// a send earned is written before the stream's next send: a receiver
// without an out-of-order window (Prometheus, Mimir by default) would
// refuse groups resent behind newer ones as out of order, although they
// were delivered. Under AckInterval it writes the fast ack file (one
// pwrite, no fsync: enough for a SIGKILL, whose page cache survives),
// leaving the ack file (fsynced, for a power cut) to the timer; otherwise,
// or when that write fails, the ack file. A write error is logged and the
// blocks are handed out all the same: a full disk must not stop sending;
// it only widens what a restart resends.
func (st *Stream) persistAcks() {
	q := st.q
	q.mu.Lock()
	need := st.acked > st.fastPos
	q.mu.Unlock()
	if !need {
		return
	}
	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	if q.fast == nil || !q.writeFastLocked() {
		q.flushAcksLocked()
	}
}

// writeFastLocked writes every stream's position to the fast ack file
// (q.ackMu held); false when it could not (logged once per failing spell).
func (q *Queue) writeFastLocked() bool {
	q.mu.Lock()
	if q.acksDone {
		q.mu.Unlock()
		return true // Close wrote the ack file
	}
	state, snap := q.ackState()
	q.mu.Unlock()
	if err := q.fast.Write(q.ackSum, state); err != nil {
		if !q.fastFailing {
			q.logger.Warn("cannot write the fast ack file, writing the ack file instead", "err", err)
		}
		q.fastFailing = true
		return false
	}
	if q.fastFailing {
		q.logger.Info("fast ack file written again")
		q.fastFailing = false
	}
	q.mu.Lock()
	for _, p := range snap {
		p.st.fastPos = max(p.st.fastPos, p.acked)
	}
	q.mu.Unlock()
	return true
}

// loadAcks reads the ack file and the fast ack file and returns the
// positions Open starts from: per stream the newer of the two. A fast
// record counts only if it was written over the ack file found (its Base
// is that file's checksum): one left by an earlier life of the queue
// after the ack file was written again (by a clean Close, or by a release
// that does not know the fast file and may since have reused the seqs it
// names) is ignored. When the fast record is ahead, the ack file is
// written with the merged positions (fsynced) before the fast file is
// truncated for this life's writes, so no position is ever held by the
// fast file alone once Open returns but one this life wrote.
func (q *Queue) loadAcks() (disk.AckState, error) {
	var a disk.AckState
	trusted := true // a fast record may add to the ack file found
	sum := uint32(0)
	switch got, s, err := disk.ReadAckSum(q.cfg.Dir); {
	case err == nil:
		a, sum = got, s
	case errors.Is(err, disk.ErrAckNotFound):
	case errors.Is(err, disk.ErrAckCorrupt):
		// Resend rather than lose: replay everything still on disk.
		q.logger.Warn("corrupt ack file, replaying from the oldest segment", "err", err)
		q.m.corruptions.Inc()
		trusted = false
	default:
		return a, err
	}
	fast, ok, err := disk.ReadFastAck(q.cfg.Dir)
	if err != nil {
		return a, err
	}
	if ok && trusted && fast.Base == sum {
		if merged, ahead := disk.MergeAcks(a, fast.State); ahead {
			if err := disk.WriteAck(q.cfg.Dir, merged); err != nil {
				return a, err
			}
			a, sum = merged, disk.AckSum(merged)
		}
	}
	q.ackSum = sum
	if q.cfg.AckInterval > 0 {
		if q.fast, err = disk.CreateFastAck(q.cfg.Dir, fast.Gen+1); err != nil {
			return a, err
		}
	}
	return a, nil
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
func (q *Queue) persisted(snap []streamPos) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range snap {
		p.st.persisted = max(p.st.persisted, p.acked)
		p.st.fastPos = max(p.st.fastPos, p.acked)
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
	q.ackSum = disk.AckSum(state)
	q.persisted(snap)
}

// streamPos is a stream's acked position as ackState saw it.
type streamPos struct {
	st    *Stream
	acked uint64
}

// ackState is what the ack file must say now, and the acked position of
// each stream it records (q.mu and q.ackMu held). Seq (the floor) is the
// lowest acked position of the streams with blocks on disk, each tenant
// above it gets an entry; a plain queue's file so stays version 1 (no
// entries). The state's Tenants map and the slice are the queue's own,
// reused by the next call (so an Ack allocates neither): valid while
// q.ackMu is held, never kept.
func (q *Queue) ackState() (disk.AckState, []streamPos) {
	snap := q.ackSnap[:0]
	var floor, top uint64
	first := true
	for _, st := range q.streams {
		snap = append(snap, streamPos{st, st.acked})
		top = max(top, st.acked)
		if st.segRefs > 0 && (first || st.acked < floor) {
			floor, first = st.acked, false
		}
	}
	q.ackSnap = snap
	if first {
		floor = top // no blocks on disk: every stream is done
	}
	a := disk.AckState{Seq: floor, Segment: int64(q.active().index)}
	clear(q.ackTenants)
	for _, p := range snap {
		if p.acked > floor && p.st.segRefs > 0 {
			if q.ackTenants == nil {
				q.ackTenants = map[string]uint64{}
			}
			q.ackTenants[p.st.tenant] = p.acked
		}
	}
	if len(q.ackTenants) > 0 {
		a.Tenants = q.ackTenants
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
