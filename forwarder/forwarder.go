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
	"golang.org/x/sync/singleflight"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/push"
	"github.com/kata-containers/kata-monitor/forwarder/scrape"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
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

	// rounds runs every round under one key, so rounds never overlap and a
	// caller arriving while one runs shares it.
	rounds singleflight.Group
	// Round state: touched only by the round in flight.
	states map[string]*scrape.Target
	round  uint64
	push   *push.Builder
	caches []*scrapecache.Sandbox // the round's sandboxes for push.Build, reused
	// self is touched only by the schedule goroutine; nil unless
	// push_self_metrics is set and there is a Deps.Self and an Appender.
	self *push.Self

	// refresh asks refreshLoop for a background pull round (capacity 1:
	// requests while one is pending coalesce).
	refresh chan struct{}

	bufs *scrape.Buffers // scrape buffers, at most Concurrency

	mu        sync.Mutex // guards the fields below
	snap      *snapshot
	lastPull  time.Time // last WriteMetrics/View call (zero: none yet)
	refresher bool      // refreshLoop is running: stale snapshots may be served

	firstDone chan struct{} // closed by markFirstDone (readiness)
	firstOnce sync.Once
}

// roundKey is the one key of Forwarder.rounds.
const roundKey = "round"

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
		states:    make(map[string]*scrape.Target),
		bufs:      scrape.NewBuffers(cfg.Concurrency),
		push:      push.NewBuilder(len(cfg.MetricRelabelConfigs) > 0, cfg.HonorTimestamps, deps.Logger),
		refresh:   make(chan struct{}, 1),
		firstDone: make(chan struct{}),
	}
	if f.now == nil {
		f.now = time.Now
	}
	for name, value := range cfg.ExternalLabels {
		f.external = append(f.external, labels.Label{Name: name, Value: value})
	}
	slices.SortFunc(f.external, func(a, b labels.Label) int { return cmp.Compare(a.Name, b.Name) })
	f.pushing = len(deps.Appenders) > 0
	f.env = scrapecache.NewEnv(f.pushing, cfg.MetricRelabelConfigs, f.external)
	if cfg.PushSelfMetrics && deps.Self != nil && f.pushing {
		f.self = push.NewSelf(deps.Self, f.external, f.log)
	}
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
// ctx, a pull round in flight finishes (bounded by scrape_timeout) because
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
//
// A round that began finishes even if ctx ends meanwhile (shutdown): its
// scrapes are bounded by scrape_timeout and the CRI lookups by the CRI's
// timeout, and what it scraped is appended and committed. Cutting it short
// would either lose the samples of every shim already scraped or, pushed,
// turn the shims not yet scraped into staleness markers. The appenders
// outlive Run for this (cmd/kata-monitor stops them after it).
func (f *Forwarder) scheduledRound(ctx context.Context) {
	var snap *snapshot
	var md []series.Metadata
	for snap == nil {
		if ctx.Err() != nil {
			return
		}
		// Joining a pull round in flight returns without ran: rounds never
		// overlap, so the push round starts after it.
		_, _, _ = f.rounds.Do(roundKey, func() (any, error) {
			snap, md = f.execRound(context.WithoutCancel(ctx), true)
			f.publish(snap)
			return snap, nil
		})
	}
	ctx = context.WithoutCancel(ctx) // the round ran: push all of it
	if f.self != nil {
		// The shims' metadata set is f.push.LastMetadata() whether or not
		// this round resends it; the self families join it.
		c, changed := f.self.Push(snap.at.UnixMilli(), func(ss []series.Series) { f.sendSeries(ctx, ss) })
		f.m.addPush(c)
		f.m.selfSamples.Add(float64(c.Samples))
		if changed || md != nil {
			md = f.self.Metadata(f.push.LastMetadata())
		}
	}
	if f.pushing {
		f.commit(ctx)
		f.markFirstDone() // the round is queued: committed to the appenders
	}
	if md != nil {
		f.sendMetadata(md)
	}
}

// pullRound returns the body of a pull round for f.rounds. The round
// outlives ctx: callers sharing it may be waiting, and it is bounded by
// scrape_timeout anyway.
func (f *Forwarder) pullRound(ctx context.Context) func() (any, error) {
	return func() (any, error) {
		snap, _ := f.execRound(context.WithoutCancel(ctx), false)
		f.publish(snap)
		return snap, nil
	}
}

// publish makes snap the latest snapshot and retires the previous one.
func (f *Forwarder) publish(snap *snapshot) {
	f.mu.Lock()
	old := f.snap
	f.snap = snap
	if old != nil {
		old.retired = true
		f.recycle(old)
	}
	f.mu.Unlock()
	if !f.pushing {
		f.markFirstDone()
	}
}

func (f *Forwarder) markFirstDone() { f.firstOnce.Do(func() { close(f.firstDone) }) }

// FirstRoundDone is a readiness signal, closed once the first round is
// done: pull only, once a round (a pull round: there are no others) has
// finished and its snapshot is served; with Appenders, once the first
// scheduled round has also been appended and committed to every
// appender (a pull round pushes nothing, and publishing comes before the
// commit). Never closed if no such round ever runs. Safe for concurrent
// use.
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
// of them. It blocks at most about scrape_timeout plus the write, and
// returns ctx's error when ctx ends while it waits for a round; a round it
// started finishes anyway, for the callers sharing it. Safe for concurrent
// use.
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
		switch {
		case err != nil:
			return nil, err
		case snap == nil:
			// The round's snapshot was retired and recycled before this
			// caller got to it: a newer one exists.
		case snap.NoPull:
			// A scheduled round that started while pulls were idle has no
			// pull lines: lastPull is now set, so the next try runs a
			// pull round.
			f.release(snap)
		default:
			return snap, nil
		}
	}
}

// acquireOnce returns the latest snapshot if fresh, else the snapshot of the
// round in flight or of a new one, with a reader reference held; nil when
// that snapshot is already recycled.
func (f *Forwarder) acquireOnce(ctx context.Context) (*snapshot, error) {
	f.mu.Lock()
	f.lastPull = f.now()
	if s := f.snap; s != nil && !s.NoPull {
		age := f.now().Sub(s.done)
		fresh := age < f.cfg.SnapshotMaxAge
		if !fresh && f.refresher && age < 2*f.cfg.SnapshotMaxAge {
			select {
			case f.refresh <- struct{}{}:
			default: // a refresh is already pending
			}
			fresh = true
		}
		if fresh {
			s.readers++
			f.mu.Unlock()
			return s, nil
		}
	}
	f.mu.Unlock()
	select {
	case res := <-f.rounds.DoChan(roundKey, f.pullRound(ctx)):
		snap := res.Val.(*snapshot)
		f.mu.Lock()
		defer f.mu.Unlock()
		if snap.retired && snap.readers == 0 { // recycle ran
			return nil, nil
		}
		snap.readers++
		return snap, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for scrape round: %w", ctx.Err())
	}
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
		fresh := f.snap != nil && !f.snap.NoPull && f.now().Sub(f.snap.done) < f.cfg.SnapshotMaxAge
		f.mu.Unlock()
		if fresh {
			continue // a round ran meanwhile
		}
		// Joins the round in flight if any. Pull callers may join this
		// round: it finishes even on shutdown.
		_, _, _ = f.rounds.Do(roundKey, f.pullRound(ctx))
	}
}

func (f *Forwarder) release(s *snapshot) {
	f.mu.Lock()
	s.readers--
	f.recycle(s)
	f.mu.Unlock()
}

// recycle lets go of a retired, unread snapshot's pull lines (the GC
// frees them). They are not kept for the next round to reuse: a spare set
// is ~4 MiB of live heap at 200 sandboxes, all the time, to save one
// allocation of that size per pull round. Called with f.mu held.
func (f *Forwarder) recycle(s *snapshot) {
	if s.retired && s.readers == 0 {
		s.Out = nil
	}
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

// newLines allocates a sandbox's pull lines sized from its previous
// round (exposition.NewLines).
func (f *Forwarder) newLines(st *scrape.Target) *exposition.Lines {
	return exposition.NewLines(st.OutHint)
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
