package tenant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// groupSeries is the most series a tenant's queue gets in one Append (one
// WAL group, one fsync under wal.fsync append): the forwarder's chunk size
// (forwarder.Appender), so a tenant's share of a round is written in as
// few groups as the whole round would be without routing.
const groupSeries = 8192

// maxHeldSeries bounds the series Append holds over all tenants (about
// 10 MiB with 8 labels per series): past it, the tenant holding the most
// is appended at once. Up to maxHeldSeries / groupSeries tenants get
// ceil(share/groupSeries) groups per round whatever their order; more
// tenants, interleaved, get groups of about maxHeldSeries / tenants.
var maxHeldSeries = 4 * groupSeries

// bucket is one tenant's part of the round being gathered: copies of its
// series (in the router's store), held until groupSeries of them are
// there, or maxHeldSeries are held over all tenants, or Commit.
type bucket struct {
	tenant string
	// Resolved at the first series of each Append call (call): the
	// tenant's queue, or why its series are dropped.
	call   uint64
	tq     *tenantQueue
	reason string // tenant_limit or tenant_invalid when tq is nil
	cause  error
	// dropped counts this call's samples dropped for reason.
	dropped int
	inHeld  bool // b is in Router.held

	held held
}

// Append takes one chunk of a round: each series goes to the tenant its
// tenant.label names (tenant.default without it). A tenant's series are
// copied and held; once a tenant holds groupSeries of them they are
// appended to its queue at once, and Commit appends what is left at the
// end of the round. So a tenant's share of a round becomes
// ceil(share/groupSeries) WAL groups, however the round was chunked and
// its tenants interleaved (one group per chunk per tenant would cost
// routing a write, an fsync and a small request each: docs/benchmarks.md).
// Series of a tenant that cannot have a queue (invalid name, or
// tenant.max_tenants reached) are dropped and counted. Append does not
// retain ss (forwarder.Appender's contract) and blocks only on the local
// disk. Errors of several tenants are joined; the other tenants' series
// are taken regardless. What Append holds is at most a round, never more
// than groupSeries series per tenant.
func (r *Router) Append(ctx context.Context, ss []series.Series) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("wal closed")
	}
	r.call++
	now := r.now()
	label, def := r.cfg.Tenant.Label, r.cfg.Tenant.Default
	var errs []error
	var last *bucket
	var touched []*bucket
	for i := range ss {
		t := def
		if v := ss[i].Get(label); v != "" {
			t = v
		}
		// A sandbox's series come one after the other: most series hit
		// the bucket of the one before.
		b := last
		if b == nil || b.tenant != t {
			if b = r.buckets[t]; b == nil {
				b = &bucket{tenant: t}
				r.buckets[t] = b
			}
			if b.call != r.call {
				if err := r.resolve(b, now); err != nil {
					errs = append(errs, err)
				}
				touched = append(touched, b)
			}
			last = b
		}
		if b.tq == nil {
			b.dropped += len(ss[i].Samples)
			continue
		}
		r.store.hold(&b.held, ss[i])
		if !b.inHeld {
			b.inHeld = true
			r.held = append(r.held, b)
		}
		r.heldSeries++
		if b.held.n >= groupSeries {
			errs = append(errs, r.flush(ctx, b))
		} else if r.heldSeries > maxHeldSeries {
			errs = append(errs, r.flush(ctx, r.largest()))
		}
	}
	for _, b := range touched {
		r.countDropped(b, now)
	}
	r.trimBuckets()
	return errors.Join(errs...)
}

// resolve finds b's queue for this Append call, opening it on first sight,
// or the reason b's series are dropped (r.mu held). An error opening the
// queue is returned (the forwarder counts it); b's series of this call are
// then not taken.
func (r *Router) resolve(b *bucket, now time.Time) error {
	b.call, b.dropped = r.call, 0
	b.tq, b.reason, b.cause = r.tenants[b.tenant], "", nil
	if b.tq != nil {
		b.tq.lastAppend = now
		return nil
	}
	switch err := config.ValidTenant(b.tenant); {
	case err != nil:
		b.reason, b.cause = reasonTenantInvalid, err
	case len(r.tenants) >= r.cfg.Tenant.MaxTenants:
		b.reason, b.cause = reasonTenantLimit, fmt.Errorf("tenant.max_tenants (%d) queues open", r.cfg.Tenant.MaxTenants)
	default:
		tq, err := r.openTenant(b.tenant)
		if err != nil {
			return err
		}
		b.tq, tq.lastAppend = tq, now
	}
	return nil
}

// countDropped counts and logs (rate-limited) the samples of b dropped in
// this Append call (r.mu held).
func (r *Router) countDropped(b *bucket, now time.Time) {
	if b.dropped == 0 || b.reason == "" {
		b.dropped = 0
		return
	}
	r.metrics.dropped.WithLabelValues(b.reason).Add(float64(b.dropped))
	if now.Sub(r.dropLogged) < logEvery {
		r.dropSuppressed++
	} else {
		r.logger.Error("series of a tenant that cannot have a queue, dropped", "tenant", b.tenant,
			"reason", b.reason, "err", b.cause, "samples", b.dropped, "suppressed", r.dropSuppressed)
		r.dropLogged, r.dropSuppressed = now, 0
	}
	b.dropped = 0
}

// flush appends b's held series to its tenant's queue as one group and
// empties b (r.mu held); b stays in r.held until Commit. When ctx has
// ended, b keeps its series for Run's (or Close's) last commit.
func (r *Router) flush(ctx context.Context, b *bucket) error {
	if b.held.n == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	if tq := r.tenants[b.tenant]; tq != nil {
		if err = tq.q.Append(ctx, r.store.seriesOf(&b.held)); err != nil {
			err = fmt.Errorf("tenant %q: %w", b.tenant, err)
		}
	}
	r.heldSeries -= b.held.n
	r.store.release(&b.held)
	return err
}

// Commit appends every tenant's held series to its queue, one group per
// tenant (forwarder.Committer: the forwarder calls it after the last chunk
// of each round). When it returns nil the round is in the WAL. Errors of
// several tenants are joined; the other tenants' series are appended
// regardless.
func (r *Router) Commit(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("wal closed")
	}
	return r.commit(ctx)
}

// commit is Commit with r.mu held.
func (r *Router) commit(ctx context.Context) error {
	var errs []error
	kept := r.held[:0] // buckets flush left their series (ctx ended)
	for _, b := range r.held {
		errs = append(errs, r.flush(ctx, b))
		if b.held.n > 0 {
			kept = append(kept, b)
			continue
		}
		b.inHeld = false
	}
	clear(r.held[len(kept):])
	r.held = kept
	return errors.Join(errs...)
}

// trimBuckets forgets the buckets of tenants that are gone (invalid, over
// the limit, closed), so they cannot grow without bound (r.mu held).
func (r *Router) trimBuckets() {
	if len(r.buckets) <= 2*r.cfg.Tenant.MaxTenants {
		return
	}
	for t, b := range r.buckets {
		if r.tenants[t] == nil && b.held.n == 0 {
			delete(r.buckets, t)
		}
	}
}

// largest is the held bucket with the most series (r.mu held).
func (r *Router) largest() *bucket {
	var big *bucket
	for _, b := range r.held {
		if big == nil || b.held.n > big.held.n {
			big = b
		}
	}
	return big
}
