package forwarder

import (
	"context"
	"errors"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/kata-containers/kata-monitor/sources/shim"
)

// execRound scrapes every live sandbox once and builds the snapshot; a
// scheduled round in push mode also appends its series to the appenders
// (in chunks, before the snapshot is published) and returns the metadata
// to send (nil when unchanged). The caller is the round in flight
// (Forwarder.rounds). Each phase is its own function: prepare, scrapeAll,
// forgetGone, newSnapshot, and the push phase.
func (f *Forwarder) execRound(ctx context.Context, scheduled bool) (*snapshot, []series.Metadata) {
	began := time.Now()
	start := f.now()
	f.round++
	round := f.round
	collect := scheduled && f.pushing
	// Pulls idle: render no pull lines; the first pull runs a pull round.
	noPull := scheduled && f.pullIdle()

	states := f.prepare(ctx, round, noPull)
	f.scrapeAll(ctx, states, scheduled, collect, round)
	f.forgetGone(states, round)
	snap := f.newSnapshot(states, round, start, noPull)

	var md []series.Metadata
	// A round cut short by shutdown would turn every series into a
	// staleness marker: push nothing from it.
	if collect && ctx.Err() == nil {
		md = f.pushRound(ctx, states, snap, start)
	}
	snap.done = f.now()

	trigger := "pull"
	if scheduled {
		trigger = "schedule"
	}
	f.m.rounds.WithLabelValues(trigger).Inc()
	f.m.roundDuration.Observe(time.Since(began).Seconds())
	f.m.runningShims.Set(float64(len(states)))
	f.m.lastRoundTstamp.Set(float64(start.UnixNano()) / 1e9)
	return snap, md
}

// prepare lists the live sandboxes (sorted by id, once each), asks the CRI
// about new ones, and readies their states for the round: pod labels and
// an empty pull buffer (families only when noPull).
func (f *Forwarder) prepare(ctx context.Context, round uint64, noPull bool) []*sandboxState {
	list := slices.Clone(f.deps.Sandboxes.List())
	slices.SortFunc(list, func(a, b sandbox.Sandbox) int { return strings.Compare(a.ID, b.ID) })
	list = slices.CompactFunc(list, func(a, b sandbox.Sandbox) bool { return a.ID == b.ID })

	f.lookupNewPods(ctx, list)
	states := make([]*sandboxState, len(list))
	for i, sb := range list {
		st := f.states[sb.ID]
		if st == nil {
			st = newSandboxState(sb.ID)
			st.jitter = jitterFor(sb.ID, f.jitterMax)
			f.states[sb.ID] = st
		}
		st.socket, st.root, st.round = sb.Socket, sb.Root, round
		if pod, ok := f.deps.Pods.Lookup(sb.ID); ok {
			if old, known := st.cache.Pod(); !known || pod != old {
				st.cache.SetPod(pod)
			}
		}
		if noPull {
			st.out = exposition.NewMeta(st.outHint.Fams())
		} else {
			st.out = f.newLines(st)
		}
		st.out.Labels = st.cache.Labels()
		states[i] = st
	}
	return states
}

// scrapeAll scrapes and parses every sandbox of the round in parallel
// (at most concurrency at once), then judges the failures.
func (f *Forwarder) scrapeAll(ctx context.Context, states []*sandboxState, scheduled, collect bool, round uint64) {
	// One hung shim costs only its own series: the whole round ends at
	// scrape_timeout (plus the jitter of scheduled rounds) at worst.
	budget := f.cfg.ScrapeTimeout
	if scheduled {
		budget += f.jitterMax
	}
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	sem := make(chan struct{}, f.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, st := range states {
		wg.Go(func() { f.scrapeSandbox(rctx, st, sem, scheduled, collect, round) })
	}
	wg.Wait()
	f.judgeFailures(states)
}

// forgetGone drops the sandboxes the round did not list (their series
// become staleness candidates, their scraper state is forgotten), moves
// every sandbox's vanished series to the push phase, and trims the
// interner to what the live series can use.
func (f *Forwarder) forgetGone(states []*sandboxState, round uint64) {
	var gone []*sandboxState
	for id, st := range f.states {
		if st.round != round {
			st.cache.EvictAll()
			gone = append(gone, st)
			delete(f.states, id)
		}
	}
	for _, st := range states {
		f.push.Release(st.cache)
	}
	for _, st := range gone {
		f.push.Release(st.cache)
	}
	live := 0
	for _, st := range states {
		live += st.cache.Len()
	}
	f.env.Reset(4*live + 4096)
	if fg, ok := f.deps.Scraper.(Forgetter); ok {
		for _, st := range gone {
			fg.Forget(st.socket)
		}
	}
}

// newSnapshot builds the round's snapshot from the sandboxes' pull lines,
// merges it and counts what the parse and the merge left out.
func (f *Forwarder) newSnapshot(states []*sandboxState, round uint64, start time.Time, noPull bool) *snapshot {
	snap := &snapshot{seq: round, at: start, ids: make([]string, len(states)), status: make([]SandboxStatus, len(states))}
	snap.NoPull = noPull
	snap.Out = make([]*exposition.Lines, len(states))
	for i, st := range states {
		snap.ids[i], snap.status[i], snap.Out[i] = st.id, st.status, st.out
		if !noPull {
			st.outHint = st.out.Size()
		}
		st.out = nil
	}
	f.countDrops(states, snap, snap.Merge())
	return snap
}

// jitterFor spreads scheduled scrapes over the first part of the interval,
// the same offset for a sandbox every round.
func jitterFor(id string, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return time.Duration(h.Sum64() % uint64(max))
}

// scrapeSandbox scrapes and parses one sandbox; it runs in its own
// goroutine and touches only st. It waits for the sandbox's jitter
// (scheduled rounds), then holds a concurrency slot for the scrape and the
// parse, so at most concurrency scrape buffers are in use at once.
func (f *Forwarder) scrapeSandbox(ctx context.Context, st *sandboxState, sem chan struct{}, scheduled, collect bool, round uint64) {
	st.status = SandboxStatus{LastScrape: f.now()}
	st.drops = exposition.DropCounts{}
	f.m.scrapes.Inc()
	err := waitSlot(ctx, st, sem, scheduled)
	var body []byte
	var ct string
	if err == nil {
		defer func() { <-sem }()
		body, ct, err = f.fetch(ctx, st)
		defer f.putBuf(body) // after the parse
		if err == nil {
			err = scrapecache.CheckFormat(ct) // a format we did not ask for: the scrape failed
		}
	}
	if err != nil {
		// Counted and logged by judgeFailures once the round knows
		// whether the sandbox still exists.
		st.scrapeErr = err
		st.status.Err = shim.Printable(err.Error())
		st.cache.EvictAll()
		return
	}
	st.scrapeErr = nil
	if st.failing {
		f.log.Info("scrape shim recovered", sandbox.LogKey, st.id)
	}
	st.failing = false
	f.parse(st, body, ct, round, collect)
}

// parse reads one sandbox's exposition into its cache and pull lines and
// counts what it left out.
func (f *Forwarder) parse(st *sandboxState, body []byte, contentType string, round uint64, collect bool) {
	ps, perr := st.cache.Parse(f.env, body, contentType, round, collect, st.out)
	st.status.Series = st.cache.Live()
	if ps.Duplicates > 0 {
		f.m.duplicates.Add(float64(ps.Duplicates))
	}
	if ps.Invalid > 0 {
		f.m.invalidSeries.Add(float64(ps.Invalid))
	}
	st.drops[exposition.DropDuplicate], st.drops[exposition.DropInvalid], st.drops[exposition.DropInvalidForType] = ps.Duplicates, ps.Invalid, ps.Unrenderable
	if perr != nil {
		f.m.parseErrors.Inc()
		st.status.Err = shim.Printable("parse: " + perr.Error())
		if !st.parseFailing {
			f.log.Warn("invalid shim exposition, keeping the series before the error", sandbox.LogKey, st.id, "err", perr)
		}
	}
	st.parseFailing = perr != nil
}

// waitSlot waits for the sandbox's jitter (scheduled rounds) and takes a
// concurrency slot; the caller releases it.
func waitSlot(ctx context.Context, st *sandboxState, sem chan struct{}, scheduled bool) error {
	if scheduled && st.jitter > 0 {
		t := time.NewTimer(st.jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetch gets the exposition into a pooled buffer, with its Content-Type.
func (f *Forwarder) fetch(ctx context.Context, st *sandboxState) ([]byte, string, error) {
	sctx, cancel := context.WithTimeout(ctx, f.cfg.ScrapeTimeout)
	defer cancel()
	began := time.Now()
	body, ct, err := f.deps.Scraper.Scrape(sctx, st.socket, f.getBuf())
	dur := time.Since(began)
	st.status.Duration = dur
	f.m.scrapeDuration.Observe(float64(dur) / float64(time.Millisecond))
	return body, ct, err
}

// judgeFailures counts and logs the failed scrapes of a round, except
// those of sandboxes that are gone (the pod was deleted while its scrape
// was in flight): a vanished shim is the end of a sandbox, not a failure.
// Runs in the round's sequential phase.
func (f *Forwarder) judgeFailures(states []*sandboxState) {
	var live map[string]bool
	for _, st := range states {
		if st.scrapeErr == nil {
			continue
		}
		if live == nil {
			list := f.deps.Sandboxes.List()
			live = make(map[string]bool, len(list))
			for _, sb := range list {
				live[sb.ID] = true
			}
		}
		if !live[st.id] || dirGone(st.root, st.socket) {
			f.log.Debug("sandbox went away during its scrape", sandbox.LogKey, st.id, "err", st.scrapeErr)
			st.status.Err = ""
			st.scrapeErr = nil
			continue
		}
		f.m.scrapesFailed.Inc()
		if !st.failing {
			f.log.Warn("scrape shim failed", sandbox.LogKey, st.id, "err", st.status.Err)
		}
		st.failing = true
	}
}

// dirGone reports whether the sandbox directory holding socket vanished
// from a sandbox root that still exists: the runtime removes it when the
// pod is deleted, before the shim exits. The watcher's live set learns it
// a moment later.
func dirGone(root, socket string) bool {
	if root == "" {
		return false
	}
	if _, err := os.Lstat(filepath.Dir(socket)); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	_, err := os.Lstat(root)
	return err == nil
}

// podRefresher is implemented by a Pods source that can ask the CRI at
// once (sources/cri.Cache).
type podRefresher interface {
	Refresh(ctx context.Context) error
}

// newPodLookupTimeout bounds the CRI call a round makes for new sandboxes.
const newPodLookupTimeout = time.Second

// lookupNewPods asks the CRI once, before the scrape, when the round has a
// sandbox it never saw whose pod the cache does not know: the very first
// sample of a new pod then carries its cri_* labels (the CRI usually lists
// the pod before the shim's directory appears). One call per round at
// most, bounded by newPodLookupTimeout; on failure the sandbox is scraped
// without pod labels and the cache's own refresh fills them in later.
func (f *Forwarder) lookupNewPods(ctx context.Context, list []sandbox.Sandbox) {
	pr, ok := f.deps.Pods.(podRefresher)
	if !ok {
		return
	}
	for _, sb := range list {
		if f.states[sb.ID] != nil {
			continue
		}
		if _, known := f.deps.Pods.Lookup(sb.ID); known {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, min(newPodLookupTimeout, f.cfg.ScrapeTimeout))
		err := pr.Refresh(lctx)
		cancel()
		if err != nil {
			f.log.Debug("cri lookup for a new sandbox failed", sandbox.LogKey, sb.ID, "err", err)
		}
		return
	}
}

// getBuf returns a scrape buffer from the pool, or nil (the scraper
// allocates one).
func (f *Forwarder) getBuf() []byte {
	f.bufMu.Lock()
	defer f.bufMu.Unlock()
	n := len(f.bufs)
	if n == 0 {
		return nil
	}
	b := f.bufs[n-1]
	f.bufs[n-1] = nil
	f.bufs = f.bufs[:n-1]
	return b
}

// putBuf returns a scrape buffer to the pool, which keeps at most one per
// concurrency slot. One huge exposition (up to the shim client's 32 MiB
// cap) must not stay pinned: a buffer much bigger than what it held is
// dropped, and the next scrape allocates one that fits.
func (f *Forwarder) putBuf(b []byte) {
	if b == nil || cap(b) > 4*len(b)+64<<10 {
		return
	}
	f.bufMu.Lock()
	defer f.bufMu.Unlock()
	if len(f.bufs) < f.cfg.Concurrency {
		f.bufs = append(f.bufs, b[:0])
	}
}

// countDrops adds the round's dropped samples (parse and merge) to each
// sandbox's status and to kata_monitor_series_dropped_total, and logs a
// reason the first round it appears for a sandbox (again only after a
// round without it).
func (f *Forwarder) countDrops(states []*sandboxState, snap *snapshot, merged []exposition.DropCounts) {
	for i, st := range states {
		d := st.drops
		if merged != nil {
			for r, n := range merged[i] {
				d[r] += n
			}
		}
		var logged uint16
		for r, n := range d {
			if n == 0 {
				continue
			}
			bit := uint16(1) << r
			logged |= bit
			f.m.dropped.WithLabelValues(exposition.DropReason(r).String()).Add(float64(n))
			if st.dropLogged&bit == 0 {
				f.log.Warn("shim samples left out", sandbox.LogKey, st.id, "reason", exposition.DropReason(r).String(), "samples", n)
			}
		}
		st.dropLogged = logged
		snap.status[i].Dropped = d.ByName()
	}
}
