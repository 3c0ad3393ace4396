package wal

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// Stream is one tenant's reader of a Queue: the blocks appended with its
// tenant, in order, with its own read position, acknowledgements,
// in-memory tail and metrics, so that a reader that is held back (a
// tenant's receiver refusing or rate-limiting it) holds back no other
// stream. A plain queue's stream is its own Next, Ack and Stats. Methods
// are safe for concurrent use; one reader (Next then Ack) is intended.
type Stream struct {
	q        *Queue
	tenant   string
	m        *streamMetrics
	memLimit int64

	readMu sync.Mutex // serialises Next and owns cur; taken before q.mu
	cur    *disk.Cursor

	// Under q.mu:
	detached       bool          // no reader: Close was called, or never attached
	wake           chan struct{} // closed and replaced by an Append with its blocks; closed by Close
	readPos        uint64        // every block of the stream <= readPos was handed out, dropped or acked
	acked          uint64        // every block of the stream <= acked is done
	persisted      uint64        // acked as the ack file has it (fsynced: survives a power cut)
	fastPos        uint64        // acked as the ack file or the fast ack file has it (survives a SIGKILL)
	inflight       []blockMeta   // handed out by Next, not yet acked
	mem            []Block       // newest blocks with seq > readPos, bounded by memLimit
	memBytes       int64
	memFloor       uint64 // mem holds every existing unread block with seq >= memFloor
	pendingBlocks  int
	pendingSamples int
	segRefs        int // segments holding blocks of the stream
}

// Stream attaches a reader to tenant's stream of a queue opened with
// Tenants: its blocks already on disk (after its acknowledged position)
// and every block appended with its tenant from now on. memoryBytes bounds
// its in-memory tail (0: the queue's MemoryBytes). Its metrics are
// registered on reg, which should add a tenant label (nil: not
// registered). It fails when the tenant has a reader already, for an
// invalid tenant, or when the queue is closed.
func (q *Queue) Stream(tenant string, memoryBytes int64, reg prometheus.Registerer) (*Stream, error) {
	if tenant == "" || len(tenant) > disk.MaxTenantLength {
		return nil, fmt.Errorf("tenant %q: must be 1 to %d bytes", tenant, disk.MaxTenantLength)
	}
	if memoryBytes <= 0 {
		memoryBytes = q.cfg.MemoryBytes
	}
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, ErrClosed
		}
		st := q.streams[tenant]
		if st != nil && !st.detached {
			q.mu.Unlock()
			return nil, fmt.Errorf("tenant %q: stream already has a reader", tenant)
		}
		if st == nil {
			defer q.mu.Unlock()
			m, err := newStreamMetrics(reg, q.cfg.Name)
			if err != nil {
				return nil, err
			}
			if o := q.counted[tenant]; o != nil {
				m.carryOver(o) // a reader's, or its blocks', before the state was forgotten
				delete(q.counted, tenant)
			}
			st = q.newStream(tenant, m, memoryBytes)
			st.m.pendingSamples.Set(float64(st.pendingSamples))
			return st, nil
		}
		// A detached state: what its last reader held is reset under
		// readMu, which a Close of that reader may not have reached yet.
		q.mu.Unlock()
		if st, ok, err := q.reattach(st, memoryBytes, reg); ok {
			return st, err
		}
	}
}

// reattach attaches a new reader to the detached st; ok is false when st
// changed meanwhile (attached, or dropped from the queue): the caller
// looks again.
func (q *Queue) reattach(st *Stream, memoryBytes int64, reg prometheus.Registerer) (_ *Stream, ok bool, _ error) {
	st.readMu.Lock()
	defer st.readMu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.streams[st.tenant] != st || !st.detached {
		return nil, false, nil
	}
	m, err := newStreamMetrics(reg, q.cfg.Name)
	if err != nil {
		return nil, true, err
	}
	_ = st.resetReader() // a cursor's close error changes nothing for the new reader
	// st.m counted unregistered while the stream had no reader (Close
	// swapped the reader's metrics for such a set).
	m.carryOver(st.m)
	st.m, st.memLimit = m, memoryBytes
	st.detached = false
	st.m.pendingSamples.Set(float64(st.pendingSamples))
	return st, true, nil
}

// resetReader forgets what the stream's last reader held: its cursor, its
// memory tail, and the blocks it was handed but did not acknowledge, which
// the next reader gets again from disk; those the disk budget deleted
// meanwhile (the budget leaves handed-out blocks to their reader) are
// counted dropped now, as nobody can send them any more (st.readMu and
// q.mu held).
func (st *Stream) resetReader() error {
	var err error
	if st.cur != nil {
		err = st.cur.Close()
		st.cur = nil
	}
	if len(st.inflight) > 0 {
		blocks, samples := 0, 0
		for _, b := range st.inflight {
			if !st.onDisk(b.seq) {
				blocks++
				samples += b.samples
			}
		}
		st.q.dropOn(st, reasonBudget, blocks, samples)
		st.pendingBlocks -= blocks
		st.pendingSamples -= samples
		st.readPos = st.inflight[0].seq - 1
		st.inflight = nil
	}
	st.mem, st.memBytes, st.memFloor = nil, 0, st.q.nextSeq
	return err
}

// Tenants returns the tenants whose streams hold pending blocks but have
// no reader: after Open, the backlog a caller must attach readers to.
func (q *Queue) Tenants() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for t, st := range q.streams {
		if st.detached && st.pendingBlocks > 0 {
			out = append(out, t)
		}
	}
	return out
}

// Tenant is the stream's tenant ("" for a plain queue's).
func (st *Stream) Tenant() string { return st.tenant }

// Append appends blocks as one group of the stream (Queue.AppendGroups).
func (st *Stream) Append(blocks []Block) error {
	for i := range blocks {
		blocks[i].Tenant = st.tenant
	}
	return st.q.AppendGroups([][]Block{blocks})
}

// Stats returns a snapshot of the stream: its pending blocks, positions
// and lag; Bytes and Segments are the whole queue's.
func (st *Stream) Stats() Stats {
	st.q.mu.Lock()
	defer st.q.mu.Unlock()
	return st.stats()
}

func (st *Stream) stats() Stats {
	q := st.q
	return Stats{
		Bytes:          q.diskBytes(),
		Segments:       len(q.segs),
		PendingBlocks:  st.pendingBlocks,
		PendingSamples: st.pendingSamples,
		AckedSeq:       st.acked,
		LastSeq:        q.nextSeq - 1,
		OldestPending:  st.oldestPending(),
	}
}

// Close detaches the reader: its metrics are unregistered, and blocks it
// was handed but did not acknowledge will be handed out again to the next
// reader of the tenant (or after a restart). Its blocks stay on disk until
// acknowledged or dropped. The positions it acknowledged are written
// before Close returns (under Config.AckInterval to the fast ack file, the
// fsynced ack file following on the timer). Returns ErrClosed when already
// detached or the queue is closed. The plain queue's stream is closed by
// Queue.Close.
func (st *Stream) Close() error {
	err := st.detach()
	if !errors.Is(err, ErrClosed) {
		st.persistAcks()
	}
	return err
}

// detach is Close without persisting the acknowledged positions.
func (st *Stream) detach() error {
	q := st.q
	if st == q.def {
		return errors.New("the plain queue's stream is closed by Queue.Close")
	}
	q.mu.Lock()
	if q.closed || st.detached {
		q.mu.Unlock()
		return ErrClosed
	}
	st.detached = true
	close(st.wake) // a Next waiting returns ErrClosed, freeing readMu
	st.wake = make(chan struct{})
	st.m.unregister()
	// What happens to its blocks until the next reader attaches is counted
	// apart and added to that reader's metrics (Queue.Stream).
	st.m, _ = newStreamMetrics(nil, q.cfg.Name) // cannot fail unregistered
	q.mu.Unlock()

	st.readMu.Lock()
	defer st.readMu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	if !st.detached {
		// A new reader attached in between (Queue.Stream), and reset
		// what this one held: nothing here is this reader's any more.
		return nil
	}
	err := st.resetReader()
	if st.segRefs == 0 {
		q.forget(st)
	}
	return err
}

// onDisk reports whether the stream's block seq is in a segment's index
// (q.mu held).
func (st *Stream) onDisk(seq uint64) bool {
	for _, s := range st.q.segs {
		if bl := s.blocksOf(st); len(bl) > 0 && bl[0].seq <= seq && seq <= lastOf(bl) {
			return hasSeq(bl, seq)
		}
	}
	return false
}

// oldestPending returns the MinTimestamp of the stream's oldest pending
// block: the first one handed out and not acked, else the first one not
// handed out (blocks dropped by the budget or lost to corruption are
// behind readPos). 0 when nothing is pending. Called with q.mu held.
func (st *Stream) oldestPending() int64 {
	if len(st.inflight) > 0 {
		return st.inflight[0].minTs
	}
	for _, s := range st.q.segs {
		bl := s.blocksOf(st)
		if i := firstAfter(bl, st.readPos); i < len(bl) {
			return bl[i].minTs
		}
	}
	return 0
}
