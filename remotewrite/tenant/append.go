package tenant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// bucket is one tenant's series that Append holds until they fill a
// block (queue_config.max_samples_per_send samples) or Commit: copies of
// the series' headers and samples, and of their labels unless they are
// given as a template and values (immutable, shared, not copied), in
// arenas reused round after round, so at most one block's series per
// tenant.
type bucket struct {
	tenant string
	// Resolved at the first series of each Append call (call): the
	// tenant's queue, or why its series are dropped.
	call   uint64
	tq     *tenantQueue
	reason string // tenant_limit, tenant_invalid or tenant_queue_error when tq is nil
	cause  error
	// dropped counts this call's samples dropped for reason.
	dropped     int
	held        []series.Series
	heldSamples int
	samples     []series.Sample // held series' samples
	labels      []labels.Label  // held series' labels (series without template)
}

// hold copies s into b; the caller may reuse s's slices afterwards.
func (b *bucket) hold(s series.Series) {
	so := len(b.samples)
	b.samples = append(b.samples, s.Samples...)
	s.Samples = b.samples[so:len(b.samples):len(b.samples)]
	if s.Template == nil && len(s.Labels) > 0 {
		// Earlier held series keep the old array if this grows it;
		// nothing writes there again until the bucket is staged.
		lo := len(b.labels)
		b.labels = append(b.labels, s.Labels...)
		s.Labels = b.labels[lo:len(b.labels):len(b.labels)]
	}
	b.held = append(b.held, s)
	b.heldSamples += len(s.Samples)
}

// reset empties b after its series were staged. The arenas are not
// cleared: until reused they keep at most one block's label strings and
// metadata alive.
func (b *bucket) reset() {
	b.held, b.samples, b.labels, b.heldSamples = b.held[:0], b.samples[:0], b.labels[:0], 0
}

// Append takes one chunk of a round: each series goes to the tenant its
// tenant.label names (tenant.default without it), in order. A tenant's
// series are held until they fill a block, then encoded into its queue's
// stage (remotewrite.Queue.Stage); Commit, after the round's last chunk,
// stages the rest and writes every tenant's stage. So a tenant's share of
// a round becomes full requests and ceil(share/8192) WAL groups however
// the round was chunked and its tenants interleaved, where one group and
// one short request per chunk per tenant cost routing a WAL write, an
// fsync, an acknowledgement and a request each (docs/benchmarks.md,
// "Tenant routing"). Series of a tenant that cannot have a queue (invalid
// name, or tenant.max_tenants reached) are dropped and counted. Append
// does not retain ss (forwarder.Appender's contract) and blocks only on
// the local disk. Errors of several tenants are joined; the other
// tenants' series are taken regardless.
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
	touched := r.touched[:0]
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
		b.hold(ss[i])
		if !b.tq.staged {
			b.tq.staged = true
			r.staged = append(r.staged, b.tq)
		}
		if b.heldSamples >= r.cfg.QueueConfig.MaxSamplesPerSend {
			errs = append(errs, r.stage(ctx, b))
		}
	}
	for _, b := range touched {
		r.countDropped(b, now)
	}
	clear(touched)
	r.touched = touched[:0]
	r.trimBuckets()
	return errors.Join(errs...)
}

// stage encodes b's held series into its tenant's queue's stage (r.mu
// held). When ctx has ended they stay held for Run's (or Close's) last
// commit.
func (r *Router) stage(ctx context.Context, b *bucket) error {
	if len(b.held) == 0 {
		return nil
	}
	tq := r.tenants[b.tenant]
	if err := ctx.Err(); err != nil || tq == nil {
		return err
	}
	// Past this check the series are staged whatever ctx does next: a
	// shutdown arriving inside Stage would have it refuse them, and
	// reset would then lose them uncounted.
	err := tq.q.Stage(context.WithoutCancel(ctx), b.held)
	b.reset()
	if err != nil {
		return fmt.Errorf("tenant %q: %w", b.tenant, err)
	}
	return nil
}

// resolve finds b's queue for this Append call, opening it on first sight,
// or the reason b's series are dropped (r.mu held). An error opening the
// queue is returned (the forwarder counts it); b's series of this call are
// then dropped and counted (tenant_queue_error).
func (r *Router) resolve(b *bucket, now time.Time) error {
	b.call, b.dropped = r.call, 0
	b.tq, b.reason, b.cause = r.tenants[b.tenant], "", nil
	if b.tq != nil {
		b.tq.lastAppend, b.tq.lastRound = now, r.rounds
		return nil
	}
	switch err := config.ValidTenant(b.tenant); {
	case err != nil:
		b.reason, b.cause = reasonTenantInvalid, err
	case b.tenant != r.cfg.Tenant.Default && r.namedTenants() >= r.cfg.Tenant.MaxTenants && !r.makeRoom(now):
		b.reason, b.cause = reasonTenantLimit, fmt.Errorf("tenant.max_tenants (%d) queues open", r.cfg.Tenant.MaxTenants)
	default:
		tq, err := r.openTenant(b.tenant)
		if err != nil {
			// Dropped and counted like an invalid tenant's, so the
			// router's accounting stays exact; the next call tries again.
			b.reason, b.cause = reasonTenantQueueError, err
			return err
		}
		b.tq, tq.lastAppend = tq, now
	}
	return nil
}

// namedTenants is the number of open queues that count against
// tenant.max_tenants: all but the default tenant's, which always has a
// place so that series without the tenant label (kata-monitor's own
// metrics among them) are never dropped for the limit (r.mu held).
func (r *Router) namedTenants() int {
	n := len(r.tenants)
	if r.tenants[r.cfg.Tenant.Default] != nil {
		n--
	}
	return n
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

// Commit writes what Append took since the last Commit, in groups of at
// most 8192 series per tenant (forwarder.Committer: the forwarder calls it after the last
// chunk of each round). When it returns nil the round is in the WAL.
// Errors of several tenants are joined; the other tenants' series are
// written regardless.
func (r *Router) Commit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err // kept for Run's last commit
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("wal closed")
	}
	return r.commit(ctx)
}

// commit is Commit with r.mu held: the staged tenants' blocks go into
// the WAL in one write (remotewrite.WriteStaged).
func (r *Router) commit(ctx context.Context) error {
	r.rounds++
	var errs []error
	kept := r.staged[:0] // tenants whose series stay held (ctx ended)
	var qs []*remotewrite.Queue
	for _, tq := range r.staged {
		if b := r.buckets[tq.name]; b != nil {
			if err := r.stage(ctx, b); err != nil {
				errs = append(errs, err)
			}
			if len(b.held) > 0 {
				kept = append(kept, tq)
				continue
			}
		}
		// Written whatever ctx does now: a shutdown arriving here would
		// leave the stage unwritten with tq no longer marked staged, and
		// closeIdle could then close the queue with the series.
		tq.staged = false
		qs = append(qs, tq.q)
	}
	if len(qs) > 0 {
		if err := remotewrite.WriteStaged(r.wal, qs); err != nil {
			errs = append(errs, err)
		}
	}
	clear(r.staged[len(kept):])
	r.staged = kept
	return errors.Join(errs...)
}

// trimBuckets forgets the buckets of tenants that are gone (invalid, over
// the limit, closed), so they cannot grow without bound (r.mu held).
func (r *Router) trimBuckets() {
	if len(r.buckets) <= 2*r.cfg.Tenant.MaxTenants {
		return
	}
	for t := range r.buckets {
		if r.tenants[t] == nil {
			delete(r.buckets, t)
		}
	}
}
