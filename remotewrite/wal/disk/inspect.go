package disk

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/prometheus/tsdb/wlog"
)

// Summary is what Inspect finds in a queue directory.
type Summary struct {
	Segments       int
	Bytes          int64 // segment bytes on disk
	PendingBlocks  int   // blocks after the acknowledged position
	PendingSamples int
	// OldestPending is the MinTimestamp (ms) of the first pending block;
	// meaningful only when PendingBlocks > 0.
	OldestPending int64
}

// IsQueueDir reports whether dir looks like a queue directory: it holds
// the lock file, an ack file, a fast ack file or a segment.
func IsQueueDir(dir string) bool {
	for _, name := range []string{"lock", AckFileName, FastAckFileName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	idx, err := ListSegments(dir)
	return err == nil && len(idx) > 0
}

// Inspect reads the queue in dir without opening it: it takes no lock and
// writes nothing (files are opened read-only), so it is safe on a
// directory another process is using; what it reports is then a snapshot
// that may already be stale. Acknowledged positions are the ack file's
// with the fast ack file's merged in (ReadAcks). A corrupt ack file counts
// everything on disk as pending (what Open would replay); corrupt records are skipped as Open
// skips them. It fails only when dir cannot be listed.
func Inspect(dir string) (Summary, error) {
	var acked AckState
	switch a, err := ReadAcks(dir); {
	case err == nil:
		acked = a
	case errors.Is(err, ErrAckNotFound), errors.Is(err, ErrAckCorrupt):
	default:
		return Summary{}, err
	}
	idx, err := ListSegments(dir)
	if err != nil {
		return Summary{}, err
	}
	var s Summary
	var last uint64
	for _, k := range idx {
		fi, err := os.Stat(wlog.SegmentName(dir, k))
		if err != nil {
			continue // deleted meanwhile by the queue's owner
		}
		s.Segments++
		s.Bytes += fi.Size()
		c, err := OpenCursor(dir, k, fi.Size(), slog.New(slog.DiscardHandler))
		if err != nil {
			continue
		}
		c.After(last)
		for {
			b, err := c.Next()
			if err != nil {
				break // the end, or an unreadable rest that Open would skip too
			}
			last = b.Seq
			if b.Seq <= acked.Done(b.Tenant) {
				continue
			}
			if s.PendingBlocks == 0 {
				s.OldestPending = b.MinTimestamp
			}
			s.PendingBlocks++
			s.PendingSamples += b.Samples
		}
		c.Close()
	}
	return s, nil
}
