package remotewrite

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// AppendMetadata replaces the family metadata set sent every
// metadata_config.send_interval in remote write 1.0 metadata requests.
// Metadata is best effort: it bypasses the WAL, is not retried, and
// failures are counted. The first non-empty set is sent right away. It
// does not retain md. Safe for concurrent use; it never blocks on the
// network. An endpoint sending 2.0 sends no metadata requests: every
// series carries its family's metadata (series.Series.Metadata).
func (q *Queue) AppendMetadata(md []series.Metadata) {
	q.mdMu.Lock()
	first := len(q.md) == 0 && len(md) > 0
	q.md = slices.Clone(md)
	q.mdMu.Unlock()
	if first {
		q.kickMetadata()
	}
}

// metadataLoop sends the latest metadata set every interval until ctx ends.
func (q *Queue) metadataLoop(ctx context.Context) error {
	t := time.NewTicker(time.Duration(q.cfg.MetadataConfig.SendInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-q.mdKick:
		}
		q.sendMetadata(ctx)
	}
}

// sendMetadata sends the current set in requests of at most
// max_samples_per_send entries, one attempt each.
func (q *Queue) sendMetadata(ctx context.Context) {
	q.mdMu.Lock()
	md := q.md // replaced, never mutated, by AppendMetadata
	q.mdMu.Unlock()
	f := q.currentFormat()
	if f.V2() {
		return // inline with every series
	}
	for chunk := range slices.Chunk(md, q.cfg.QueueConfig.MaxSamplesPerSend) {
		if ctx.Err() != nil {
			return
		}
		data, err := q.comp.EncodeMetadata(chunk, f)
		if err == nil {
			err = q.sender.Store(ctx, data, f)
		}
		q.metrics.Metadata(len(chunk), err == nil)
		if err != nil && (ctx.Err() == nil || !errors.Is(err, ctx.Err())) {
			if ok, suppressed := q.mdLog.Allow(); ok {
				q.logger.Warn("metadata send failed", "err", err, "entries", len(chunk), "suppressed", suppressed)
			}
		}
	}
}

// kickMetadata makes the metadata loop send now (the first set, or after
// the sender fell back to 1.0, whose metadata goes in its own requests).
func (q *Queue) kickMetadata() {
	select {
	case q.mdKick <- struct{}{}:
	default:
	}
}
