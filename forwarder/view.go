package forwarder

import (
	"context"
	"io"

	"github.com/prometheus/common/model"
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
//
// scheme is how names outside the legacy charset are written: NoEscaping
// (the UTF-8 syntax, for clients whose Accept says escaping=allow-utf-8),
// else escaped with model.EscapeName (underscores, dots, values). The round
// number then also tells the schemes apart when the snapshot has such names
// (it is the snapshot's sequence times 4 plus the scheme), so a cache keyed
// on it never serves one scheme's rendering to another.
func (f *Forwarder) View(ctx context.Context, scheme model.EscapingScheme, fn func(round uint64, write func(w io.Writer, prefixes []string) error) error) error {
	snap, err := f.acquire(ctx)
	if err != nil {
		return err
	}
	defer f.release(snap)
	key := snap.seq << 2
	if snap.UTF8() && scheme != model.NoEscaping {
		key |= uint64(scheme) & 3
	}
	return fn(key, func(w io.Writer, prefixes []string) error { return snap.Write(w, prefixes, scheme) })
}
