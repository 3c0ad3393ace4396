package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("wal queue closed")

// Block is one opaque payload in the queue (for remote write: one
// ready-to-send, compressed request); see disk.Block.
type Block = disk.Block

// Stats is a point-in-time view of a Queue.
type Stats struct {
	Bytes          int64  // segment bytes on disk
	Segments       int    // segment files on disk
	PendingBlocks  int    // appended (or replayed) but neither acknowledged nor dropped
	PendingSamples int    // samples of PendingBlocks
	AckedSeq       uint64 // every block <= AckedSeq is done
	LastSeq        uint64 // highest Seq assigned so far
	// OldestPending is the MinTimestamp (ms) of the oldest pending block
	// (handed out or not); meaningful only when PendingBlocks > 0.
	OldestPending int64
}

// segmentLog is the part of *wlog.WL the queue writes through. It is an
// interface only so tests can inject write errors (a full disk).
type segmentLog interface {
	Log(recs ...[]byte) error
	NextSegmentSync() (int, error)
	Sync() error
	LastSegmentAndOffset() (seg, offset int, err error)
	Close() error
}

// Queue is a durable FIFO of blocks in one directory, read by one or more
// streams: a plain queue has one stream (tenant ""), read through the
// Queue's own Next, Ack and Stats; a queue opened with Config.Tenants has
// one stream per tenant (Stream), each with its own read position,
// acknowledgements, in-memory tail and metrics, while the segment files,
// the disk budget and every write (one wlog write and, under fsync
// "append", one fsync per AppendGroups for all tenants) are shared. All
// methods are safe for concurrent use; each stream is meant for one reader
// (Next then Ack). The caller must Close it to release the directory lock.
type Queue struct {
	cfg    Config
	logger *slog.Logger
	reg    prometheus.Registerer
	m      *metrics
	lock   fileutil.Releaser

	ackMu      sync.Mutex // serialises the ack files' writes; taken before a stream's readMu and mu
	ackFailing bool       // the last flushAcksLocked failed (ackMu held)
	// Under ackMu: the fast ack file (Config.AckInterval; nil otherwise),
	// whether its last write failed, and the checksum of the ack file its
	// records add to (disk.AckSum; 0: none).
	fast        *disk.FastAckWriter
	fastFailing bool
	ackSum      uint32
	// ackState's reused snapshot and tenant entries (q.ackMu held).
	ackSnap    []streamPos
	ackTenants map[string]uint64

	mu       sync.Mutex
	closed   bool
	w        segmentLog
	segs     []*segment     // ascending index, contiguous; the last one is active
	needCut  bool           // a write failed: start a fresh segment before the next one
	failed   []*failedWrite // records of failed writes not yet discarded from disk
	cutMaybe bool           // refresh must ask wlog (a write failed, or a cut was asked)
	nextSeq  uint64
	encBuf   []byte             // records being encoded for wlog, reused (q.log)
	encRecs  [][]byte           // their slices of encBuf
	streams  map[string]*Stream // every attached stream, and every one with blocks on disk
	// counted holds, per tenant, what a stream state without a reader
	// counted (appends, drops) when the state was forgotten (no block of
	// it left on disk): the tenant's next reader's metrics start with it.
	counted map[string]*streamMetrics
	// Config.AckInterval: acks waiting for the timer to write the file.
	ackDirty bool
	ackTimer *time.Timer
	ackLast  time.Time
	acksDone bool    // Close wrote the last ack file (q.ackMu held to set it)
	def      *Stream // tenant "": the Queue's own Next, Ack and Stats; nil with Tenants
}

// Open locks cfg.Dir (creating it if needed), reads the ack file, indexes
// the existing segments, starts a new segment for appends and enforces
// MaxSize (as Append does: the oldest segments deleted, their unsent
// blocks counted dropped). Corrupt data
// never makes it fail: corrupt records, torn tails and a corrupt ack file are
// logged, counted and skipped. It fails on I/O errors, on an ack file of an
// unknown version, and when another Queue holds the directory.
// reg may be nil; the metrics are unregistered by Close.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("wal config: %w", err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	endpoint := filepath.Base(cfg.Dir)
	if cfg.Name != "" {
		endpoint = cfg.Name
	}
	cfg.Name = endpoint
	logger = logger.With("endpoint", endpoint)
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create wal dir: %w", err)
	}
	lock, _, err := fileutil.Flock(filepath.Join(cfg.Dir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("lock wal dir %s (used by another process or queue?): %w", cfg.Dir, err)
	}
	m, err := newMetrics(reg, endpoint)
	if err != nil {
		lock.Release()
		return nil, err
	}
	q := &Queue{cfg: cfg, logger: logger, reg: reg, m: m, lock: lock, streams: map[string]*Stream{}, counted: map[string]*streamMetrics{}}
	fail := func(err error) (*Queue, error) {
		if q.fast != nil {
			q.fast.Close()
		}
		for _, st := range q.streams {
			st.m.unregister()
		}
		m.unregister()
		lock.Release()
		return nil, err
	}
	if !cfg.Tenants {
		sm, err := newStreamMetrics(reg, endpoint)
		if err != nil {
			return fail(err)
		}
		q.def = q.newStream("", sm, cfg.MemoryBytes)
	}
	if err := q.load(); err != nil {
		return fail(err)
	}
	// wlog's own metrics (prometheus_tsdb_wal_*: page flushes, failed
	// writes, its fsync summary) have fixed names; the endpoint label keeps
	// each queue's series apart, and the kata_monitor_ prefix keeps them
	// from mixing with a receiving Prometheus's own WAL metrics once pushed.
	// wlog unregisters them in Close.
	wreg := prometheus.WrapRegistererWithPrefix("kata_monitor_",
		prometheus.WrapRegistererWith(prometheus.Labels{"endpoint": endpoint}, reg))
	w, err := wlog.NewSize(logger, wreg, cfg.Dir, cfg.SegmentSize, compression.None)
	if err != nil {
		return fail(fmt.Errorf("open segment writer: %w", err))
	}
	q.w = w
	seg, off, err := w.LastSegmentAndOffset()
	if err != nil {
		w.Close()
		return fail(fmt.Errorf("locate active segment: %w", err))
	}
	q.segs = append(q.segs, &segment{index: seg, size: int64(off)})
	// The budget holds from now on, not from the first Append: a clean
	// Close pads the active segment's last page, and wal.max_size may be
	// smaller than at the last start.
	q.enforceBudget()
	q.updateGauges()
	return q, nil
}

// newStream adds the state of tenant's stream (q.mu held, or before q is
// shared). A stream that never had a block starts after every seq so far.
func (q *Queue) newStream(tenant string, m *streamMetrics, memoryBytes int64) *Stream {
	st := &Stream{q: q, tenant: tenant, m: m, memLimit: memoryBytes, wake: make(chan struct{}),
		readPos: q.nextSeq - min(q.nextSeq, 1), memFloor: q.nextSeq}
	st.acked, st.persisted, st.fastPos = st.readPos, st.readPos, st.readPos
	q.streams[tenant] = st
	return st
}

// streamOf returns tenant's stream state, adding an unattached one (with
// unregistered metrics) for a tenant no reader asked for yet (q.mu held).
func (q *Queue) streamOf(tenant string) *Stream {
	if st := q.streams[tenant]; st != nil {
		return st
	}
	m := q.counted[tenant]
	delete(q.counted, tenant)
	if m == nil {
		m, _ = newStreamMetrics(nil, q.cfg.Name) // cannot fail unregistered
	}
	st := q.newStream(tenant, m, q.cfg.MemoryBytes)
	st.detached = true
	return st
}

// dropOn counts blocks of st (samples) dropped for reason on the metrics
// that stand for st's tenant now: st's while the queue has st as the
// tenant's state; once st was forgotten (a Close finishing after the
// budget deleted its last segment), the tenant's current state's, or what
// the queue keeps for its next reader (q.mu held).
func (q *Queue) dropOn(st *Stream, reason string, blocks, samples int) {
	if blocks == 0 {
		return
	}
	q.metricsOf(st).drop(reason, blocks, samples)
}

// metricsOf returns the metrics that stand for st's tenant now: st's while
// the queue has st as the tenant's state, else the tenant's current
// state's, or what the queue keeps for its next reader (q.mu held).
func (q *Queue) metricsOf(st *Stream) *streamMetrics {
	cur := q.streams[st.tenant]
	switch {
	case cur == st:
		return st.m
	case cur != nil:
		return cur.m
	case q.counted[st.tenant] != nil:
		return q.counted[st.tenant]
	}
	m, _ := newStreamMetrics(nil, q.cfg.Name) // cannot fail unregistered
	q.counted[st.tenant] = m
	return m
}

// forget removes the state of a stream without a reader and without
// blocks on disk, keeping what its metrics counted for the tenant's next
// reader (q.mu held).
func (q *Queue) forget(st *Stream) {
	if q.streams[st.tenant] != st {
		return
	}
	delete(q.streams, st.tenant)
	if !st.m.counts() {
		return
	}
	if o := q.counted[st.tenant]; o != nil {
		o.carryOver(st.m)
	} else {
		q.counted[st.tenant] = st.m
	}
}

// load restores the acked positions and the segment index from disk.
func (q *Queue) load() error {
	a, err := q.loadAcks()
	if err != nil {
		return err
	}
	idx, err := disk.ListSegments(q.cfg.Dir)
	if err != nil {
		return err
	}
	if idx, err = disk.CloseGaps(q.cfg.Dir, idx, q.logger); err != nil {
		return err
	}
	var last uint64
	for _, k := range idx {
		s, err := q.scanSegment(k, last)
		if err != nil {
			return err
		}
		last = max(last, s.lastSeq())
		q.segs = append(q.segs, s)
	}
	q.nextSeq = max(last, a.Seq) + 1
	for _, seq := range a.Tenants {
		q.nextSeq = max(q.nextSeq, seq+1)
	}
	for _, st := range q.streams {
		st.acked = max(st.acked, a.Done(st.tenant))
		st.readPos, st.persisted, st.fastPos, st.memFloor = st.acked, st.acked, st.acked, q.nextSeq
	}
	for _, s := range q.segs {
		for _, p := range s.parts {
			for _, b := range p.blocks[firstAfter(p.blocks, p.st.acked):] {
				p.st.pendingBlocks++
				p.st.pendingSamples += b.samples
			}
		}
	}
	q.trimFront()
	// Trailing segments without a readable block (left by restarts without
	// appends, or wholly corrupt) hold nothing to send.
	for n := len(q.segs); n > 0 && q.segs[n-1].empty(); n = len(q.segs) {
		if err := os.Remove(wlog.SegmentName(q.cfg.Dir, q.segs[n-1].index)); err != nil {
			return fmt.Errorf("remove empty segment %d: %w", q.segs[n-1].index, err)
		}
		q.segs = q.segs[:n-1]
	}
	for t, st := range q.streams {
		if st.detached && st.pendingBlocks > 0 && !q.cfg.Tenants {
			q.logger.Warn("blocks of a tenant in a queue without tenants: not sent, kept until the disk budget drops them",
				"tenant", t, "pending_samples", st.pendingSamples)
		}
	}
	return nil
}

// scanSegment indexes segment k. Blocks must have seqs above after; a
// stream state is added for each tenant seen.
func (q *Queue) scanSegment(k int, after uint64) (*segment, error) {
	fi, err := os.Stat(wlog.SegmentName(q.cfg.Dir, k))
	if err != nil {
		return nil, fmt.Errorf("stat segment %d: %w", k, err)
	}
	s := &segment{index: k, size: fi.Size(), closed: true}
	c, err := disk.OpenCursor(q.cfg.Dir, k, s.size, q.logger)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.After(after)
	for {
		b, err := c.Next()
		if err == nil {
			s.add(q.streamOf(b.Tenant), blockMeta{seq: b.Seq, samples: b.Samples, minTs: b.MinTimestamp})
			continue
		}
		if errors.Is(err, io.EOF) {
			torn, terr := c.TornTail(s.size)
			if terr != nil {
				return nil, terr
			}
			if torn {
				q.logger.Warn("torn segment tail, keeping the records before it", "segment", k, "offset", c.Offset(), "blocks_kept", s.count())
				q.m.corruptions.Inc()
				s.reported = true
			}
		} else {
			q.logger.Warn("corrupt segment, skipping its rest", "segment", k, "err", err, "blocks_kept", s.count())
			q.m.corruptions.Inc()
			s.reported = true
		}
		break
	}
	if c.Skipped() > 0 {
		q.logger.Warn("skipped undecodable records", "segment", k, "records", c.Skipped())
		q.m.corruptions.Add(float64(c.Skipped()))
	}
	return s, nil
}

// Close flushes and fsyncs the active segment, closes the files, releases
// the directory lock and unregisters the metrics (the streams' too).
// Blocks handed out by Next and not acknowledged whose segment the disk
// budget deleted are counted dropped ("disk_budget"); the others are
// handed out again after the next Open. A
// Next blocked in another goroutine returns ErrClosed. Calling Close twice
// returns ErrClosed.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.closed = true
	streams := slices.Collect(maps.Values(q.streams))
	for _, st := range streams {
		close(st.wake)
	}
	if q.ackTimer != nil {
		q.ackTimer.Stop()
		q.ackTimer = nil
	}
	q.mu.Unlock()

	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	q.flushAcksLocked() // the positions taken in memory (AckInterval)
	q.mu.Lock()
	q.acksDone = true // a timer that fired meanwhile finds it
	q.mu.Unlock()
	var errs []error
	if q.fast != nil {
		// Its records name the ack file they add to, which the flush
		// just replaced: the next Open ignores them.
		if err := q.fast.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", disk.FastAckFileName, err))
		}
		q.fast = nil
	}
	for _, st := range streams {
		// Blocks handed out and not acked are sent again after a restart
		// if their segment is still on disk; those the disk budget deleted
		// meanwhile (it leaves handed-out blocks to their reader) can be
		// sent by nobody any more and are counted dropped now.
		st.readMu.Lock()
		q.mu.Lock()
		if err := st.resetReader(); err != nil {
			errs = append(errs, err)
		}
		q.mu.Unlock()
		st.readMu.Unlock()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.w.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close segment writer: %w", err))
	}
	// wlog writes nothing more: what failed writes left can go, the active
	// segment's included.
	for _, f := range q.failed {
		if f.end == 0 {
			f.end = q.active().index + 1
		}
	}
	q.discardFailed()
	if err := q.lock.Release(); err != nil {
		errs = append(errs, fmt.Errorf("release wal dir lock: %w", err))
	}
	q.m.unregister()
	for _, st := range streams {
		st.m.unregister()
		st.mem, st.memBytes = nil, 0
	}
	return errors.Join(errs...)
}

// Stats returns a snapshot of the plain queue's stream, or with Tenants
// the sums over every stream (OldestPending: the oldest of theirs). It
// does not block on I/O.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.def != nil {
		return q.def.stats()
	}
	st := Stats{Bytes: q.diskBytes(), Segments: len(q.segs), LastSeq: q.nextSeq - 1}
	for _, s := range q.streams {
		if s.pendingBlocks == 0 {
			continue
		}
		o := s.oldestPending()
		if st.PendingBlocks == 0 || o < st.OldestPending {
			st.OldestPending = o
		}
		st.PendingBlocks += s.pendingBlocks
		st.PendingSamples += s.pendingSamples
	}
	return st
}

// Next is the plain queue's stream's Next (see Stream.Next); it fails
// for a queue opened with Tenants.
func (q *Queue) Next(ctx context.Context, max int) ([]Block, error) {
	if q.def == nil {
		return nil, errTenants
	}
	return q.def.Next(ctx, max)
}

// Ack is the plain queue's stream's Ack (see Stream.Ack); it fails for a
// queue opened with Tenants.
func (q *Queue) Ack(seq uint64) error {
	if q.def == nil {
		return errTenants
	}
	return q.def.Ack(seq)
}

var errTenants = errors.New("wal queue has tenant streams: read them through Stream")

func (q *Queue) diskBytes() int64 {
	var n int64
	for _, s := range q.segs {
		n += s.size
	}
	return n
}

// updateGauges sets the queue's gauges and the pending gauge of every
// stream (q.mu held).
func (q *Queue) updateGauges() {
	q.m.bytes.Set(float64(q.diskBytes()))
	q.m.segments.Set(float64(len(q.segs)))
	for _, st := range q.streams {
		st.m.pendingSamples.Set(float64(st.pendingSamples))
	}
}
