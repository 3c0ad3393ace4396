// Package tenant routes an endpoint's series to one queue per tenant
// (remote_write[].tenant): see Router.
package tenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// Values of tenant_samples_dropped_total's reason label.
const (
	reasonTenantLimit   = "tenant_limit"
	reasonTenantInvalid = "tenant_invalid"
	// reasonTenantQueueError: the tenant's queue could not be opened (its
	// WAL directory, say); the next round tries again.
	reasonTenantQueueError = "tenant_queue_error"
)

// ackEvery is how long at most the shared WAL leaves its tenants'
// acknowledged positions out of the fsynced ack file
// (wal.Config.AckInterval): each Ack writes them to the fast ack file (no
// fsync; a SIGKILL keeps it), so a round costs no fsync for acks, and a
// power cut resends at most the last ackEvery of acknowledged groups.
const ackEvery = time.Second

// logEvery is how often at most the router logs dropped series.
const logEvery = time.Minute

// Router is one remote_write endpoint with tenant routing (Config.Tenant):
// one WAL shared by the tenants (wal.dir/<endpoint>/tenants.wal/, the
// whole wal.max_size, remotewrite.OpenTenantWAL) and a Queue per tenant
// reading its own stream of it, with its own read position and
// acknowledgements, its own sender and its own metrics (label
// tenant=<tenant> beside endpoint). Append splits each chunk of a round by
// tenant and stages each tenant's part in its queue; Commit (after the
// round's last chunk) writes every tenant's part in one WAL write and one
// fsync (remotewrite.WriteStaged), a tenant's share of a round in
// ceil(share/8192) WAL groups, as a round without routing is. A tenant's
// queue is opened on first sight (and at start for every tenant with
// blocks pending in the WAL, so a backlog is never abandoned), and closed
// once it is empty and idle for tenant.idle_timeout, or, with
// tenant.max_tenants queues open, once it is empty, got no series in the
// last round and a new tenant needs its place (makeRoom). Because each tenant
// waits on its own receiver answers, one tenant's refusals, 429s and
// Retry-After never delay another's samples. The per-tenant directories
// of the layout before the shared WAL are moved into it at New (migrate).
//
// Append, Commit, AppendMetadata, Ready and Close are safe for concurrent
// use.
type Router struct {
	cfg     config.Config
	walCfg  config.WALConfig
	baseDir string
	logger  *slog.Logger          // with endpoint=<name>
	qlogger *slog.Logger          // as passed to New (each queue adds endpoint)
	reg     prometheus.Registerer // as passed to New (tenant queues wrap it)
	opts    []remotewrite.Option
	wal     *wal.Queue // shared by the tenants' queues; closed after them
	metrics *routerMetrics
	now     func() time.Time
	// The drop log's rate limit (r.mu held): one line per logEvery.
	dropLogged     time.Time
	dropSuppressed int

	mu      sync.Mutex
	tenants map[string]*tenantQueue
	buckets map[string]*bucket // per tenant seen (append.go)
	touched []*bucket          // Append's scratch: this call's buckets
	staged  []*tenantQueue     // queues Append gave series since the last commit
	call    uint64             // Append calls so far
	rounds  uint64             // commits so far (a round's last chunk is followed by one)
	md      []series.Metadata
	runCtx  context.Context // set by Run; nil before
	closed  bool

	wg      sync.WaitGroup
	errOnce sync.Once
	err     error
	failed  chan struct{}
}

type tenantQueue struct {
	name       string
	q          *remotewrite.Queue
	cancel     context.CancelFunc // set when started
	done       chan struct{}      // closed when its Run returned
	lastAppend time.Time
	// lastRound is Router.rounds when Append last gave it series: it got
	// series in the round being appended when it equals rounds, in the
	// last committed one when rounds-1.
	lastRound uint64
	staged    bool // Append took series that Commit has not written
}

// New validates cfg (which must have a tenant block) like remotewrite.New,
// opens the endpoint's shared WAL, moves into it the per-tenant queue
// directories of the layout before it (walCfg.Dir/<name>/<escaped
// tenant>/), and opens the queue of every tenant with blocks pending. It starts nothing; call Run, or Close if Run will
// not be called. Metrics are registered on reg with the label
// endpoint=<name> (and tenant=<tenant> for each tenant's queue); reg may be
// nil.
func New(cfg config.Config, walCfg config.WALConfig, logger *slog.Logger, reg prometheus.Registerer, opts ...remotewrite.Option) (*Router, error) {
	cfg, err := remotewrite.Prepare(cfg, walCfg)
	if err != nil {
		return nil, err
	}
	if cfg.Tenant == nil {
		return nil, fmt.Errorf("remote_write %q: no tenant block: use remotewrite.New", cfg.Name)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// One encoder for every tenant's queue: Append stages one tenant at a
	// time (under r.mu), and one encoder's request-sized buffers per
	// tenant were most of what routing added to the heap.
	enc, err := remotewrite.NewSharedEncoder(cfg)
	if err != nil {
		return nil, fmt.Errorf("remote_write %q: %w", cfg.Name, err)
	}
	r := &Router{
		cfg: cfg, walCfg: walCfg, baseDir: filepath.Join(walCfg.Dir, cfg.Name),
		logger: logger.With("endpoint", cfg.Name), qlogger: logger, reg: reg,
		opts: append(slices.Clip(opts), remotewrite.WithSharedEncoder(enc)), now: time.Now,
		tenants: map[string]*tenantQueue{}, buckets: map[string]*bucket{},
		failed: make(chan struct{}),
	}
	if r.metrics, err = newRouterMetrics(reg, cfg.Name); err != nil {
		return nil, fmt.Errorf("remote_write %q: %w", cfg.Name, err)
	}
	if err := os.MkdirAll(r.baseDir, 0o750); err != nil {
		r.metrics.unregister()
		return nil, fmt.Errorf("remote_write %q: create wal dir: %w", cfg.Name, err)
	}
	// The WAL's own metrics (its files, its fsyncs) are the endpoint's,
	// not a tenant's: tenant="" keeps the label names of the tenants'
	// metrics, as cmd gives plain endpoints (the registry refuses a mix).
	var wreg prometheus.Registerer
	if reg != nil {
		wreg = prometheus.WrapRegistererWith(prometheus.Labels{"tenant": ""}, reg)
	}
	if r.wal, err = remotewrite.OpenTenantWAL(cfg, walCfg, ackEvery, logger, wreg); err != nil {
		r.metrics.unregister()
		return nil, err
	}
	if err := r.openExisting(); err != nil {
		r.Close()
		return nil, fmt.Errorf("remote_write %q: %w", cfg.Name, err)
	}
	return r, nil
}

// openExisting moves the per-tenant directories of the layout before the
// shared WAL into it, then opens the queue of every tenant with blocks
// pending in it: they may hold a backlog from before a restart.
func (r *Router) openExisting() error {
	if disk.IsQueueDir(r.baseDir) {
		r.logger.Warn("the endpoint's queue from before tenant routing was enabled is not sent while tenant routing is on; "+
			"disable tenant routing until it is empty, or move it away", "dir", r.baseDir)
	}
	if err := r.migrate(); err != nil {
		return err
	}
	tenants := r.wal.Tenants()
	slices.Sort(tenants)
	for _, t := range tenants {
		if err := config.ValidTenant(t); err != nil {
			r.logger.Warn("blocks of an invalid tenant in the WAL are not sent", "tenant", t, "err", err)
			continue
		}
		if _, err := r.openTenant(t); err != nil {
			return err
		}
	}
	if n := r.namedTenants(); n > r.cfg.Tenant.MaxTenants {
		r.logger.Warn("more tenants with a backlog than tenant.max_tenants; all are sent, new tenants are dropped until some close",
			"tenants", n, "max_tenants", r.cfg.Tenant.MaxTenants)
	}
	return nil
}

// openTenant opens tenant's queue (r.mu held, or before sharing r).
func (r *Router) openTenant(tenant string) (*tenantQueue, error) {
	tc := r.cfg.Tenant
	cfg := r.cfg
	cfg.Tenant = nil
	cfg.Headers = maps.Clone(cfg.Headers)
	if cfg.Headers == nil {
		cfg.Headers = map[string]string{}
	}
	cfg.Headers[tc.Header] = tenant
	var reg prometheus.Registerer
	if r.reg != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"tenant": tenant}, r.reg)
	}
	opts := append(slices.Clip(r.opts), remotewrite.WithWALStream(r.wal, tenant, tc.MaxTenants+1)) // + the default tenant
	q, err := remotewrite.New(cfg, r.walCfg, r.qlogger.With("tenant", tenant), reg, opts...)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: %w", tenant, err)
	}
	if r.md != nil {
		q.AppendMetadata(r.md)
	}
	tq := &tenantQueue{name: tenant, q: q, lastAppend: r.now(), lastRound: r.rounds}
	r.tenants[tenant] = tq
	r.metrics.tenants.Set(float64(len(r.tenants)))
	if r.runCtx != nil {
		r.start(tq)
	}
	return tq, nil
}

// start runs tq's queue until Run ends or the tenant is closed (r.mu held).
func (r *Router) start(tq *tenantQueue) {
	ctx, cancel := context.WithCancel(r.runCtx)
	tq.cancel, tq.done = cancel, make(chan struct{})
	r.wg.Go(func() {
		defer close(tq.done)
		if err := tq.q.Run(ctx); err != nil {
			r.fail(fmt.Errorf("tenant %q: %w", tq.name, err))
		}
	})
}

func (r *Router) fail(err error) {
	r.errOnce.Do(func() {
		r.err = err
		close(r.failed)
	})
}

// AppendMetadata hands md to every tenant's queue (each tenant gets the
// whole set) and to tenants opened later.
func (r *Router) AppendMetadata(md []series.Metadata) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.md = md
	for _, tq := range r.tenants {
		tq.q.AppendMetadata(md)
	}
}

// Run runs every tenant's queue (and those opened later) until ctx ends,
// closing idle tenants on the way, then writes what Append took of a
// round cut short (as a Queue has each chunk in its WAL at once), and
// waits for the queues to stop softly (each as Queue.Run does). It returns
// the first error of a tenant's queue (a failing WAL), which stops the
// others too, or nil. Call it once.
func (r *Router) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	if r.runCtx != nil || r.closed {
		r.mu.Unlock()
		return errors.New("router already run or closed")
	}
	r.runCtx = runCtx
	for _, tq := range r.tenants {
		r.start(tq)
	}
	r.mu.Unlock()

	every := min(time.Duration(r.cfg.Tenant.IdleTimeout)/4, time.Minute)
	tick := time.NewTicker(every)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-r.failed:
			break loop
		case <-tick.C:
			r.closeIdle()
		}
	}
	r.mu.Lock()
	r.closed = true
	r.commitLeft()
	r.mu.Unlock()
	cancel()
	r.wg.Wait()
	r.metrics.unregister()
	if err := r.wal.Close(); err != nil && r.err == nil {
		return fmt.Errorf("close wal: %w", err)
	}
	return r.err
}

// closeIdle closes the queue of every tenant that is empty and got no
// series for tenant.idle_timeout, so its place under max_tenants is free
// (its stream leaves the WAL with its last segment). The default tenant
// is kept.
func (r *Router) closeIdle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	idle := time.Duration(r.cfg.Tenant.IdleTimeout)
	for _, tq := range r.tenants {
		if now.Sub(tq.lastAppend) < idle || !r.closable(tq) {
			continue
		}
		r.closeTenant(tq, "closed an idle tenant's queue", now)
	}
}

// closable reports whether tq's queue may be closed without losing or
// delaying anything: not the default tenant's, nothing pending, nothing
// of a round held for it (r.mu held).
func (r *Router) closable(tq *tenantQueue) bool {
	return tq.name != r.cfg.Tenant.Default && !tq.staged && tq.q.PendingBlocks() == 0
}

// closeTenant stops tq's queue and forgets it (r.mu held; r.closable(tq)).
// Under r.mu no Append can reach this tenant meanwhile; its sender is idle
// (nothing pending), so it stops at once.
func (r *Router) closeTenant(tq *tenantQueue, msg string, now time.Time) {
	tq.cancel()
	<-tq.done
	delete(r.tenants, tq.name)
	delete(r.buckets, tq.name)
	r.metrics.tenants.Set(float64(len(r.tenants)))
	r.logger.Info(msg, "tenant", tq.name, "idle", now.Sub(tq.lastAppend).Round(time.Second))
}

// makeRoom closes, when tenant.max_tenants queues are open, the queue of
// the tenant idle longest among those that got no series in the last
// round nor in this one and have nothing pending, so that a new tenant
// takes its place rather than being dropped until idle_timeout ends
// (short-lived namespaces: far fewer alive at once than max_tenants, more
// over an idle_timeout). Tenants that get series every round are never
// closed for another, so past max_tenants of them the newest are still
// dropped. Reports whether a place is free (r.mu held).
func (r *Router) makeRoom(now time.Time) bool {
	if r.runCtx == nil {
		return false // nothing runs yet: the queues have no cancel
	}
	var victim *tenantQueue
	for _, tq := range r.tenants {
		if tq.lastRound+1 >= r.rounds || !r.closable(tq) {
			continue
		}
		if victim == nil || tq.lastAppend.Before(victim.lastAppend) {
			victim = tq
		}
	}
	if victim == nil {
		return false
	}
	r.closeTenant(victim, "closed the queue of a tenant without series in the last round for a new tenant (tenant.max_tenants reached)", now)
	return r.namedTenants() < r.cfg.Tenant.MaxTenants
}

// Ready is nil until the router is closed (readiness probes).
func (r *Router) Ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("wal closed")
	}
	return nil
}

// Close writes what Append took (as Run does on return), then releases
// every tenant's WAL and the metrics when Run will not be called (Run does
// it on return). Idempotent; Append fails afterwards.
func (r *Router) Close() error {
	r.mu.Lock()
	r.closed = true
	qs := make([]*remotewrite.Queue, 0, len(r.tenants))
	for _, tq := range r.tenants {
		qs = append(qs, tq.q)
	}
	running := r.runCtx != nil
	if !running {
		r.commitLeft()
	}
	r.mu.Unlock()
	if running {
		return nil // Run closes them
	}
	var errs []error
	for _, q := range qs {
		errs = append(errs, q.Close())
	}
	r.metrics.unregister()
	if r.wal != nil {
		if err := r.wal.Close(); err != nil && !errors.Is(err, wal.ErrClosed) {
			errs = append(errs, fmt.Errorf("close wal: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Tenants returns the tenants with an open queue, for tests and status.
func (r *Router) Tenants() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.tenants))
}

// commitLeft writes what Append took when the router closes (r.mu held):
// the chunks of a round cut short are not lost.
func (r *Router) commitLeft() {
	if err := r.commit(context.Background()); err != nil {
		r.logger.Error("cannot append the rest of a round while closing", "err", err)
	}
}
