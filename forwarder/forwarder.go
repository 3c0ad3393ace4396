package forwarder

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"golang.org/x/sync/errgroup"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
)

// Forwarder schedules scrape rounds and serves their results. Build it with
// New; Run drives push mode; WriteMetrics and Status serve pull requests and
// may be called concurrently with each other and with Run.
type Forwarder struct {
	cfg       Config
	deps      Deps
	log       *slog.Logger
	now       func() time.Time
	m         *metrics
	env       *scrapecache.Env
	pushing   bool           // there are Appenders: scheduled rounds run and push
	external  []labels.Label // external_labels, sorted by name
	jitterMax time.Duration

	// Round state: touched only by the holder of the baton (the goroutine
	// that installed f.inflight), so rounds never overlap.
	states map[string]*sandboxState
	round  uint64
	push   pushState
	// self is touched only by the schedule goroutine.
	self selfPush

	// refresh asks refreshLoop for a background pull round (capacity 1:
	// requests while one is pending coalesce).
	refresh chan struct{}

	bufMu sync.Mutex
	bufs  [][]byte // scrape buffers, at most Concurrency

	mu        sync.Mutex // guards the fields below
	snap      *snapshot
	inflight  *roundCall
	free      []*exposition.Lines // spare pull buffers, at most one round's worth
	lastPull  time.Time           // last WriteMetrics/View call (zero: none yet)
	refresher bool                // refreshLoop is running: stale snapshots may be served

	firstDone chan struct{} // closed by the first publish (readiness)
	firstOnce sync.Once
}

// roundCall is one round in flight; pull callers arriving meanwhile wait for
// it instead of starting their own (a hand-written singleflight).
type roundCall struct {
	done      chan struct{}
	waiters   int // pull callers holding a reader reference on snap once done
	published bool
	snap      *snapshot
}

// New validates cfg and builds a Forwarder. It starts nothing and registers
// the self-metrics on deps.Registerer.
func New(cfg Config, deps Deps) (*Forwarder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("forwarder config: %w", err)
	}
	switch {
	case deps.Sandboxes == nil:
		return nil, errors.New("forwarder: no sandbox source")
	case deps.Pods == nil:
		return nil, errors.New("forwarder: no pod source")
	case deps.Scraper == nil:
		return nil, errors.New("forwarder: no scraper")
	case deps.Logger == nil:
		return nil, errors.New("forwarder: no logger")
	case deps.Registerer == nil:
		return nil, errors.New("forwarder: no registerer")
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("forwarder metrics: %w", err)
	}
	f := &Forwarder{
		cfg:       cfg,
		deps:      deps,
		log:       deps.Logger,
		now:       deps.Now,
		m:         m,
		jitterMax: min(cfg.ScrapeInterval/10, time.Second),
		states:    make(map[string]*sandboxState),
		push:      pushState{last: make(map[uint64]uint64), dedupe: len(cfg.MetricRelabelConfigs) > 0},
		refresh:   make(chan struct{}, 1),
		firstDone: make(chan struct{}),
	}
	if f.now == nil {
		f.now = time.Now
	}
	f.push.ts = tsGuard{honor: cfg.HonorTimestamps, log: f.log, sandboxes: make(map[string]*sandboxTS)}
	for name, value := range cfg.ExternalLabels {
		f.external = append(f.external, labels.Label{Name: name, Value: value})
	}
	slices.SortFunc(f.external, func(a, b labels.Label) int { return cmp.Compare(a.Name, b.Name) })
	f.pushing = len(deps.Appenders) > 0
	f.env = scrapecache.NewEnv(f.pushing, cfg.MetricRelabelConfigs, f.external)
	return f, nil
}

// Run drives push mode and background refreshes of the pull snapshot, and
// blocks until ctx ends. With Appenders it runs a round soon after start and
// then on every scrape_interval boundary of the clock, pushing each round to
// every Appender in turn. A round that overruns makes the schedule skip the
// missed ticks (counted), never overlap. In both modes, while Run runs, a
// pull request that finds a stale snapshot (see WriteMetrics) is served at
// once and Run refreshes the snapshot in the background. Run returns nil
// after its goroutines ended: an in-flight scheduled round is cancelled by
// ctx, a background pull round finishes (bounded by scrape_timeout) because
// pull callers may be waiting for it.
func (f *Forwarder) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		f.refreshLoop(ctx)
		return nil
	})
	if f.pushing {
		g.Go(func() error {
			f.schedule(ctx)
			return nil
		})
	}
	return g.Wait()
}

// schedule runs scheduled rounds until ctx ends.
func (f *Forwarder) schedule(ctx context.Context) {
	interval := f.cfg.ScrapeInterval
	start := f.now()
	next := start
	for {
		if err := sleepUntil(ctx, f.now, next); err != nil {
			return
		}
		f.scheduledRound(ctx)
		if ctx.Err() != nil {
			return
		}
		prev := next
		next = next.Truncate(interval).Add(interval)
		if prev.Equal(start) && next.Sub(start) < interval/2 {
			next = next.Add(interval) // keep the first two rounds apart
		}
		if now := f.now(); !now.Before(next) {
			missed := now.Sub(next)/interval + 1
			f.m.roundsSkipped.Add(float64(missed))
			next = next.Add(missed * interval)
		}
	}
}

func sleepUntil(ctx context.Context, now func() time.Time, t time.Time) error {
	d := t.Sub(now())
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// scheduledRound waits for any pull round in flight, then runs a round of
// its own (pull callers arriving meanwhile share it) and pushes it.
func (f *Forwarder) scheduledRound(ctx context.Context) {
	c, err := f.takeBaton(ctx)
	if err != nil {
		return
	}
	snap, md := f.execRound(ctx, true)
	f.publish(c, snap, false)
	if f.cfg.PushSelfMetrics && f.deps.Self != nil && f.pushing && ctx.Err() == nil {
		// The shims' metadata set is f.push.md whether or not this round
		// resends it; the self families join it.
		if f.pushSelf(ctx, snap.at.UnixMilli()) || md != nil {
			md = f.selfMetadata(f.push.md)
		}
	}
	if md != nil {
		f.sendMetadata(md)
	}
}

// takeBaton installs a new roundCall once no round is in flight.
func (f *Forwarder) takeBaton(ctx context.Context) (*roundCall, error) {
	for {
		f.mu.Lock()
		c := f.inflight
		if c == nil {
			c = &roundCall{done: make(chan struct{})}
			f.inflight = c
			f.mu.Unlock()
			return c, nil
		}
		f.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// publish makes snap the latest snapshot, hands it to the round's waiters
// (and to the leader when leaderReads) and releases the baton.
func (f *Forwarder) publish(c *roundCall, snap *snapshot, leaderReads bool) {
	f.mu.Lock()
	old := f.snap
	f.snap = snap
	if old != nil {
		old.retired = true
		f.recycle(old)
	}
	if snap.NoPull {
		f.free = nil // pulls are idle: keep no spare buffers either
	}
	snap.readers += c.waiters
	if leaderReads {
		snap.readers++
	}
	c.snap, c.published = snap, true
	f.inflight = nil
	f.mu.Unlock()
	close(c.done)
	f.firstOnce.Do(func() { close(f.firstDone) })
}

// FirstRoundDone is closed once the first round (scheduled or pulled) has
// finished and its snapshot is served: a readiness signal. Never closed if
// no round ever runs (pull only, nobody pulling). Safe for concurrent use.
func (f *Forwarder) FirstRoundDone() <-chan struct{} { return f.firstDone }

// WriteMetrics writes the merged text exposition (format 0.0.4) of all
// sandboxes: the latest round when it finished less than snapshot_max_age
// ago; while Run runs, also a stale one (less than twice snapshot_max_age
// old), Run then starting a new round in the background if none is in
// flight (stale-while-revalidate: a pull request never waits for a round
// while a recent one exists); else the round in flight, else a new round
// run by this caller. One
// HELP/TYPE per family, families sorted by name, sandboxes in id order
// within a family; with prefixes, only families whose name starts with one
// of them. It blocks at most about scrape_timeout plus the write; a round it
// started finishes even if ctx ends, for the callers sharing it. Safe for
// concurrent use.
func (f *Forwarder) WriteMetrics(ctx context.Context, w io.Writer, prefixes []string) error {
	snap, err := f.acquire(ctx)
	if err != nil {
		return err
	}
	defer f.release(snap)
	return snap.Write(w, prefixes, model.NoEscaping)
}

// acquire returns a fresh snapshot with a reader reference held.
func (f *Forwarder) acquire(ctx context.Context) (*snapshot, error) {
	for {
		snap, err := f.acquireOnce(ctx)
		if err != nil || !snap.NoPull {
			return snap, err
		}
		// A scheduled round that started while pulls were idle has no
		// pull lines: lastPull is now set, so the next try runs a pull round.
		f.release(snap)
	}
}

func (f *Forwarder) acquireOnce(ctx context.Context) (*snapshot, error) {
	f.mu.Lock()
	f.lastPull = f.now()
	if s := f.snap; s != nil && !s.NoPull {
		age := f.now().Sub(s.done)
		fresh := age < f.cfg.SnapshotMaxAge
		if !fresh && f.refresher && age < 2*f.cfg.SnapshotMaxAge {
			if f.inflight == nil {
				select {
				case f.refresh <- struct{}{}:
				default: // a refresh is already pending
				}
			}
			fresh = true
		}
		if fresh {
			s.readers++
			f.mu.Unlock()
			return s, nil
		}
	}
	if c := f.inflight; c != nil {
		c.waiters++
		f.mu.Unlock()
		select {
		case <-c.done:
			return c.snap, nil
		case <-ctx.Done():
			f.mu.Lock()
			if c.published {
				c.snap.readers--
				f.recycle(c.snap)
			} else {
				c.waiters--
			}
			f.mu.Unlock()
			return nil, fmt.Errorf("wait for scrape round: %w", ctx.Err())
		}
	}
	c := &roundCall{done: make(chan struct{})}
	f.inflight = c
	f.mu.Unlock()
	// The round outlives this caller's ctx: others may be waiting for it,
	// and it is bounded by scrape_timeout anyway.
	snap, _ := f.execRound(context.WithoutCancel(ctx), false)
	f.publish(c, snap, true)
	return snap, nil
}

// refreshLoop runs the background pull rounds asked for by acquire, until
// ctx ends.
func (f *Forwarder) refreshLoop(ctx context.Context) {
	f.mu.Lock()
	f.refresher = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.refresher = false
		f.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.refresh:
		}
		f.mu.Lock()
		if f.inflight != nil || (f.snap != nil && !f.snap.NoPull && f.now().Sub(f.snap.done) < f.cfg.SnapshotMaxAge) {
			f.mu.Unlock() // a round ran or runs meanwhile: nothing to do
			continue
		}
		c := &roundCall{done: make(chan struct{})}
		f.inflight = c
		f.mu.Unlock()
		// Pull callers may join this round: finish it even on shutdown.
		snap, _ := f.execRound(context.WithoutCancel(ctx), false)
		f.publish(c, snap, false)
	}
}

func (f *Forwarder) release(s *snapshot) {
	f.mu.Lock()
	s.readers--
	f.recycle(s)
	f.mu.Unlock()
}

// recycle returns a retired, unread snapshot's buffers to the free list,
// which keeps at most one round's worth (one spare set, ~5 MiB at 200
// sandboxes): reusing them spares the GC a round's worth of allocation
// every round, and more spares would only add live heap. Called with f.mu
// held.
func (f *Forwarder) recycle(s *snapshot) {
	if !s.retired || s.readers > 0 || s.Out == nil {
		return
	}
	if f.snap != nil && f.snap.NoPull {
		s.Out = nil
		return
	}
	for _, r := range s.Out {
		if len(f.free) < len(s.Out) && r.Tight() {
			f.free = append(f.free, r)
		}
	}
	s.Out = nil
}

// pullIdle reports whether no pull request came for max(10 minutes, 4
// scrape intervals): scheduled rounds then render no pull lines.
func (f *Forwarder) pullIdle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now().Sub(f.lastPull) >= pullIdleAfter(f.cfg.ScrapeInterval)
}

func pullIdleAfter(interval time.Duration) time.Duration {
	return max(10*time.Minute, 4*interval)
}

// newLines takes a buffer set from the free list, or allocates one sized
// from the sandbox's previous round (exposition.NewLines).
func (f *Forwarder) newLines(st *sandboxState) *exposition.Lines {
	f.mu.Lock()
	if n := len(f.free); n > 0 {
		r := f.free[n-1]
		f.free[n-1] = nil
		f.free = f.free[:n-1]
		f.mu.Unlock()
		r.Reset()
		return r
	}
	f.mu.Unlock()
	return exposition.NewLines(st.outHint)
}

// Status returns the outcome of the last scrape of sandbox id in the latest
// finished round, and false when that round did not include it. It never
// blocks on a round; safe for concurrent use.
func (f *Forwarder) Status(id string) (SandboxStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.snap == nil {
		return SandboxStatus{}, false
	}
	i, ok := slices.BinarySearch(f.snap.ids, id)
	if !ok {
		return SandboxStatus{}, false
	}
	return f.snap.status[i], true
}
