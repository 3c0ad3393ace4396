package forwarder

import (
	"context"
	"io"
)

// View acquires a snapshot exactly as WriteMetrics does (the latest round
// when fresh, else the round in flight, else a new round) and calls fn with
// it, holding a reader reference until fn returns. fn receives the round
// number, which identifies the snapshot (equal numbers mean identical
// content, later rounds have larger numbers), so a caller may cache what it
// derives from a snapshot, e.g. a compressed rendering. write renders the
// snapshot like WriteMetrics; it may be called any number of times, only
// while fn runs, and from one goroutine at a time or several concurrently.
//
// View returns the acquisition error without calling fn (nothing was
// written), else fn's error. Safe for concurrent use; it blocks like
// WriteMetrics plus the time fn takes.
func (f *Forwarder) View(ctx context.Context, fn func(round uint64, write func(w io.Writer, prefixes []string) error) error) error {
	snap, err := f.acquire(ctx)
	if err != nil {
		return err
	}
	defer f.release(snap)
	return fn(snap.seq, snap.write)
}
