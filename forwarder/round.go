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

	"github.com/prometheus/prometheus/prompb"

	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/kata-containers/kata-monitor/sources/shim"
)

// execRound scrapes every live sandbox once and builds the snapshot; a
// scheduled round in push mode also appends its series to the appenders
// (in chunks, before the snapshot is published) and returns the metadata
// to send (nil when unchanged). The caller holds the baton.
func (f *Forwarder) execRound(ctx context.Context, scheduled bool) (*snapshot, []prompb.MetricMetadata) {
	began := time.Now()
	start := f.now()
	ts := start.UnixMilli()
	f.round++
	round := f.round
	collect := scheduled && f.env.push
	// Pulls idle: render no pull lines; the first pull runs a pull round.
	noPull := scheduled && f.pullIdle()

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
		if pod, ok := f.deps.Pods.Lookup(sb.ID); ok && (!st.podKnown || pod != st.pod) {
			st.setPod(pod)
		}
		if noPull {
			st.out = &rendered{meta: true, fams: make([]famMeta, 0, st.outHint.fams)}
		} else {
			st.out = f.newRendered(st)
		}
		st.out.labels = st.labels
		states[i] = st
	}

	// One hung shim costs only its own series: the whole round ends at
	// scrape_timeout (plus the jitter of scheduled rounds) at worst.
	budget := f.cfg.ScrapeTimeout
	if scheduled {
		budget += f.jitterMax
	}
	rctx, cancel := context.WithTimeout(ctx, budget)
	sem := make(chan struct{}, f.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, st := range states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.scrapeSandbox(rctx, st, sem, scheduled, collect, round)
		}()
	}
	wg.Wait()
	cancel()
	f.judgeFailures(states)

	var gone []*sandboxState
	for id, st := range f.states {
		if st.round != round {
			st.evictAll()
			gone = append(gone, st)
			delete(f.states, id)
		}
	}
	f.push.release(states)
	f.push.release(gone)
	live := 0
	for _, st := range states {
		live += len(st.byRaw)
	}
	f.env.strs.reset(4*live + 4096)
	if fg, ok := f.deps.Scraper.(Forgetter); ok {
		for _, st := range gone {
			fg.Forget(st.socket)
		}
	}

	snap := &snapshot{seq: round, at: start, noPull: noPull, ids: make([]string, len(states)), status: make([]SandboxStatus, len(states)),
		out: make([]*rendered, len(states))}
	for i, st := range states {
		snap.ids[i], snap.status[i], snap.out[i] = st.id, st.status, st.out
		if !noPull {
			st.outHint = renderedSize{lines: len(st.out.infos), buf: len(st.out.buf), fams: len(st.out.fams), names: len(st.out.names), spans: len(st.out.spans)}
		}
		st.out = nil
	}
	f.countDrops(states, snap, snap.merge())

	var md []prompb.MetricMetadata
	// A round cut short by shutdown would turn every series into a
	// staleness marker: push nothing from it.
	if collect && ctx.Err() == nil {
		f.push.build(states, ts, f.m, func(series []prompb.TimeSeries) { f.sendSeries(ctx, series) })
		md = f.push.metadata(snap.all)
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
	st.drops = dropCounts{}
	f.m.scrapes.Inc()
	err := waitSlot(ctx, st, sem, scheduled)
	var body []byte
	var ct string
	if err == nil {
		defer func() { <-sem }()
		body, ct, err = f.fetch(ctx, st)
		defer f.putBuf(body) // after the parse
		if err == nil {
			if _, perr := isOpenMetrics(ct); perr != nil {
				err = perr // a format we did not ask for: the scrape failed
			}
		}
	}
	if err != nil {
		// Counted and logged by judgeFailures once the round knows
		// whether the sandbox still exists.
		st.scrapeErr = err
		st.status.Err = shim.Printable(err.Error())
		st.evictAll()
		st.samples = st.samples[:0]
		return
	}
	st.scrapeErr = nil
	if st.failing {
		f.log.Info("scrape shim recovered", "sandbox", st.id)
	}
	st.failing = false

	var ps parseStats
	st.format = ct
	perr := st.parse(&f.env, body, round, collect, &ps)
	st.status.Series = st.live
	if ps.duplicates > 0 {
		f.m.duplicates.Add(float64(ps.duplicates))
	}
	if ps.invalid > 0 {
		f.m.invalidSeries.Add(float64(ps.invalid))
	}
	st.drops[dropDuplicate], st.drops[dropInvalid], st.drops[dropInvalidForType] = ps.duplicates, ps.invalid, ps.unrenderable
	if perr != nil {
		f.m.parseErrors.Inc()
		st.status.Err = shim.Printable("parse: " + perr.Error())
		if !st.parseFailing {
			f.log.Warn("invalid shim exposition, keeping the series before the error", "sandbox", st.id, "err", perr)
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
			f.log.Debug("sandbox went away during its scrape", "sandbox", st.id, "err", st.scrapeErr)
			st.status.Err = ""
			st.scrapeErr = nil
			continue
		}
		f.m.scrapesFailed.Inc()
		if !st.failing {
			f.log.Warn("scrape shim failed", "sandbox", st.id, "err", st.status.Err)
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
			f.log.Debug("cri lookup for a new sandbox failed", "sandbox", sb.ID, "err", err)
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
func (f *Forwarder) countDrops(states []*sandboxState, snap *snapshot, merged []dropCounts) {
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
			f.m.dropped.WithLabelValues(dropReason(r).String()).Add(float64(n))
			if st.dropLogged&bit == 0 {
				f.log.Warn("shim samples left out", "sandbox", st.id, "reason", dropReason(r).String(), "samples", n)
			}
		}
		st.dropLogged = logged
		snap.status[i].Dropped = d.byName()
	}
}
