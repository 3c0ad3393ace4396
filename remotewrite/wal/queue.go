package wal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

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

// Queue is a durable FIFO of blocks in one directory. All methods are safe
// for concurrent use; it is meant for one writer (Append) and one reader
// (Next then Ack). The caller must Close it to release the directory lock.
type Queue struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics
	lock   fileutil.Releaser

	ackMu  sync.Mutex // serialises Ack's file writes; taken before mu
	readMu sync.Mutex // serialises Next and owns cur; taken before mu
	cur    *disk.Cursor

	mu       sync.Mutex
	closed   bool
	wake     chan struct{} // closed and replaced by Append; closed by Close
	w        segmentLog
	segs     []*segment // ascending index, contiguous; the last one is active
	needCut  bool       // a write failed: start a fresh segment before the next one
	cutMaybe bool       // refresh must ask wlog (a write failed, or a cut was asked)
	nextSeq  uint64
	readPos  uint64      // every block <= readPos was handed out, dropped or acked
	acked    uint64      // every block <= acked is done
	inflight []blockMeta // handed out by Next, not yet acked
	mem      []Block     // newest blocks with seq > readPos, bounded by cfg.MemoryBytes
	memBytes int64
	memFloor uint64 // mem holds every existing unread block with seq >= memFloor

	pendingBlocks  int
	pendingSamples int
}

// Open locks cfg.Dir (creating it if needed), reads the ack file, indexes
// the existing segments and starts a new segment for appends. Corrupt data
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
	q := &Queue{cfg: cfg, logger: logger, m: m, lock: lock, wake: make(chan struct{})}
	if err := q.load(); err != nil {
		m.unregister()
		lock.Release()
		return nil, err
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
		m.unregister()
		lock.Release()
		return nil, fmt.Errorf("open segment writer: %w", err)
	}
	q.w = w
	seg, off, err := w.LastSegmentAndOffset()
	if err != nil {
		w.Close()
		m.unregister()
		lock.Release()
		return nil, fmt.Errorf("locate active segment: %w", err)
	}
	q.segs = append(q.segs, &segment{index: seg, size: int64(off)})
	q.updateGauges()
	return q, nil
}

// load restores the acked position and the segment index from disk.
func (q *Queue) load() error {
	a, err := disk.ReadAck(q.cfg.Dir)
	switch {
	case err == nil:
		q.acked = a.Seq
	case errors.Is(err, disk.ErrAckNotFound):
	case errors.Is(err, disk.ErrAckCorrupt):
		// Resend rather than lose: replay everything still on disk.
		q.logger.Warn("corrupt ack file, replaying from the oldest segment", "err", err)
		q.m.corruptions.Inc()
	default:
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
	q.nextSeq = max(last, q.acked) + 1
	q.readPos, q.memFloor = q.acked, q.nextSeq
	for _, s := range q.segs {
		for _, b := range s.blocks[firstAfter(s.blocks, q.acked):] {
			q.pendingBlocks++
			q.pendingSamples += b.samples
		}
	}
	q.trimFront()
	// Trailing segments without a readable block (left by restarts without
	// appends, or wholly corrupt) hold nothing to send.
	for n := len(q.segs); n > 0 && len(q.segs[n-1].blocks) == 0; n = len(q.segs) {
		if err := os.Remove(wlog.SegmentName(q.cfg.Dir, q.segs[n-1].index)); err != nil {
			return fmt.Errorf("remove empty segment %d: %w", q.segs[n-1].index, err)
		}
		q.segs = q.segs[:n-1]
	}
	return nil
}

// scanSegment indexes segment k. Blocks must have seqs above after.
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
			s.blocks = append(s.blocks, blockMeta{seq: b.Seq, samples: b.Samples, minTs: b.MinTimestamp})
			continue
		}
		if errors.Is(err, io.EOF) {
			torn, terr := c.TornTail(s.size)
			if terr != nil {
				return nil, terr
			}
			if torn {
				q.logger.Warn("torn segment tail, keeping the records before it", "segment", k, "offset", c.Offset(), "blocks_kept", len(s.blocks))
				q.m.corruptions.Inc()
				s.reported = true
			}
		} else {
			q.logger.Warn("corrupt segment, skipping its rest", "segment", k, "err", err, "blocks_kept", len(s.blocks))
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
// the directory lock and unregisters the metrics. A Next blocked in another
// goroutine returns ErrClosed. Calling Close twice returns ErrClosed.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.closed = true
	close(q.wake)
	q.mu.Unlock()

	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	q.readMu.Lock()
	defer q.readMu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	var errs []error
	if q.cur != nil {
		errs = append(errs, q.cur.Close())
		q.cur = nil
	}
	if err := q.w.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close segment writer: %w", err))
	}
	if err := q.lock.Release(); err != nil {
		errs = append(errs, fmt.Errorf("release wal dir lock: %w", err))
	}
	q.m.unregister()
	q.mem, q.memBytes = nil, 0
	return errors.Join(errs...)
}

// Stats returns a snapshot. It does not block on I/O.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{
		Bytes:          q.diskBytes(),
		Segments:       len(q.segs),
		PendingBlocks:  q.pendingBlocks,
		PendingSamples: q.pendingSamples,
		AckedSeq:       q.acked,
		LastSeq:        q.nextSeq - 1,
		OldestPending:  q.oldestPending(),
	}
}

// oldestPending returns the MinTimestamp of the oldest pending block: the
// first one handed out and not acked, else the first one not handed out
// (blocks dropped by the budget or lost to corruption are behind readPos).
// 0 when nothing is pending. Called with q.mu held.
func (q *Queue) oldestPending() int64 {
	if len(q.inflight) > 0 {
		return q.inflight[0].minTs
	}
	for _, s := range q.segs {
		if i := firstAfter(s.blocks, q.readPos); i < len(s.blocks) {
			return s.blocks[i].minTs
		}
	}
	return 0
}

func (q *Queue) diskBytes() int64 {
	var n int64
	for _, s := range q.segs {
		n += s.size
	}
	return n
}

func (q *Queue) updateGauges() {
	q.m.bytes.Set(float64(q.diskBytes()))
	q.m.segments.Set(float64(len(q.segs)))
	q.m.pendingSamples.Set(float64(q.pendingSamples))
}
