package remotewrite

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// StrandedQueue is a queue directory under wal.dir that no configured
// endpoint owns, as found at start.
type StrandedQueue struct {
	Dir            string // the directory's name: the endpoint `name` that adopts it
	PendingSamples int
	PendingBlocks  int
	OldestPending  time.Time // zero when nothing is pending
}

// ReportStranded finds every queue directory under walCfg.Dir that none of
// endpoints owns (endpoints must be defaulted: Name set), logs a warning
// for each one that still holds samples (pending samples, oldest sample
// time, how to adopt it) and sets the gauges
// kata_monitor_remote_write_orphaned_queue_pending_samples{dir} and
// kata_monitor_remote_write_orphaned_queue_oldest_timestamp_seconds{dir}
// on reg (nil: none). A directory holding queues one level down (an
// endpoint with `tenant`: one queue per tenant) is reported as one, with
// its tenants' sums. This happens when an endpoint's name changes, or
// its URL does while name is unset (the directory name is then a hash of
// the URL). Setting the endpoint's `name` to the directory's name adopts
// the queue: it is replayed and sent like the endpoint's own.
//
// It only reads (no lock is taken, files are opened read-only), so a
// directory another process uses is not disturbed; it never deletes
// anything. A missing wal.dir is not an error; other errors reading it
// are returned for the caller to log, and should not stop the daemon.
func ReportStranded(walCfg config.WALConfig, endpoints []config.Config, logger *slog.Logger, reg prometheus.Registerer) ([]StrandedQueue, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(walCfg.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list wal.dir: %w", err)
	}
	owned := map[string]bool{}
	for _, e := range endpoints {
		owned[e.Name] = true
	}
	var out []StrandedQueue
	var errs []error
	for _, e := range entries {
		dir := filepath.Join(walCfg.Dir, e.Name())
		if !e.IsDir() || owned[e.Name()] {
			continue
		}
		s, found, err := inspectQueues(dir)
		if err != nil {
			errs = append(errs, err)
		}
		if !found {
			continue
		}
		sq := StrandedQueue{Dir: e.Name(), PendingSamples: s.PendingSamples, PendingBlocks: s.PendingBlocks}
		if s.PendingBlocks > 0 {
			sq.OldestPending = time.UnixMilli(s.OldestPending)
			logger.Warn("queue directory owned by no remote_write endpoint; its samples are not sent. To send them, set the endpoint's name to the directory's name",
				"dir", dir, "name", e.Name(), "pending_samples", s.PendingSamples,
				"oldest_sample", sq.OldestPending.UTC().Format(time.RFC3339))
		} else {
			logger.Info("queue directory owned by no remote_write endpoint, nothing pending; it can be deleted", "dir", dir)
		}
		out = append(out, sq)
	}
	if reg != nil && len(out) > 0 {
		if err := registerStranded(reg, out); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// inspectQueues sums what is pending in dir: dir itself if it is a queue
// directory, else every queue directory one level below it (an endpoint
// with `tenant` keeps its shared WAL in wal.dir/<name>/tenants.wal/, and
// releases before it one queue per tenant under wal.dir/<name>/<tenant>/).
// found is false when dir holds no queue at all.
func inspectQueues(dir string) (sum disk.Summary, found bool, err error) {
	dirs := []string{dir}
	if !disk.IsQueueDir(dir) {
		dirs = dirs[:0]
		entries, rerr := os.ReadDir(dir)
		if rerr != nil {
			return sum, false, fmt.Errorf("list %s: %w", dir, rerr)
		}
		for _, e := range entries {
			if sub := filepath.Join(dir, e.Name()); e.IsDir() && disk.IsQueueDir(sub) {
				dirs = append(dirs, sub)
			}
		}
	}
	var errs []error
	for _, d := range dirs {
		s, ierr := disk.Inspect(d)
		if ierr != nil {
			errs = append(errs, fmt.Errorf("inspect %s: %w", d, ierr))
			continue
		}
		found = true
		if s.PendingBlocks > 0 && (sum.PendingBlocks == 0 || s.OldestPending < sum.OldestPending) {
			sum.OldestPending = s.OldestPending
		}
		sum.Segments += s.Segments
		sum.Bytes += s.Bytes
		sum.PendingBlocks += s.PendingBlocks
		sum.PendingSamples += s.PendingSamples
	}
	return sum, found, errors.Join(errs...)
}

// registerStranded sets and registers the gauges of the stranded queues
// out on reg.
func registerStranded(reg prometheus.Registerer, out []StrandedQueue) error {
	pending := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "kata_monitor", Subsystem: "remote_write", Name: "orphaned_queue_pending_samples",
		Help: "Samples pending, at start, in a queue directory under wal.dir that no remote_write endpoint owns (dir: its name). Set an endpoint's name to dir to send them.",
	}, []string{"dir"})
	oldest := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "kata_monitor", Subsystem: "remote_write", Name: "orphaned_queue_oldest_timestamp_seconds",
		Help: "Timestamp of the oldest pending sample, at start, in a queue directory no remote_write endpoint owns; 0 when none is pending.",
	}, []string{"dir"})
	for _, sq := range out {
		pending.WithLabelValues(sq.Dir).Set(float64(sq.PendingSamples))
		ts := 0.0
		if !sq.OldestPending.IsZero() {
			ts = float64(sq.OldestPending.UnixMilli()) / 1e3
		}
		oldest.WithLabelValues(sq.Dir).Set(ts)
	}
	var errs []error
	for _, c := range []prometheus.Collector{pending, oldest} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, fmt.Errorf("register stranded queue metrics: %w", err))
		}
	}
	return errors.Join(errs...)
}
