package forwarder

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrape"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
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
	// A cancelled ctx would have cut scrapes short and turned their series
	// into staleness markers: push nothing then. Scheduled and pull rounds
	// run without cancellation (scheduledRound, pullRound), so this only
	// guards callers that pass a cancellable ctx.
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
func (f *Forwarder) prepare(ctx context.Context, round uint64, noPull bool) []*scrape.Target {
	list := slices.Clone(f.deps.Sandboxes.List())
	slices.SortFunc(list, func(a, b sandbox.Sandbox) int { return strings.Compare(a.ID, b.ID) })
	list = slices.CompactFunc(list, func(a, b sandbox.Sandbox) bool { return a.ID == b.ID })

	f.lookupNewPods(ctx, list)
	states := make([]*scrape.Target, len(list))
	for i, sb := range list {
		st := f.states[sb.ID]
		if st == nil {
			st = scrape.NewTarget(sb.ID, f.jitterMax)
			f.states[sb.ID] = st
		}
		st.Socket, st.Root, st.Round = sb.Socket, sb.Root, round
		if pod, ok := f.deps.Pods.Lookup(sb.ID); ok {
			if old, known := st.Cache.Pod(); !known || pod != old {
				st.Cache.SetPod(pod)
			}
		}
		if noPull {
			st.Out = exposition.NewMeta()
		} else {
			st.Out = f.newLines(st)
		}
		st.Out.Labels = st.Cache.Labels()
		states[i] = st
	}
	return states
}

// scrapeAll scrapes and parses every sandbox of the round in parallel
// (forwarder/scrape), then judges the failures. The round's scrape
// buffers are let go once it is done (scrape.Buffers.Release).
func (f *Forwarder) scrapeAll(ctx context.Context, states []*scrape.Target, scheduled, collect bool, round uint64) {
	r := scrape.Round{Source: f.deps.Scraper, Env: f.env, Buffers: f.bufs, Metrics: &f.m.scrape, Log: f.log,
		Now: f.now, Timeout: f.cfg.ScrapeTimeout, JitterMax: f.jitterMax, Concurrency: f.cfg.Concurrency,
		Number: round, Scheduled: scheduled, Collect: collect, Live: f.deps.Sandboxes.List}
	r.All(ctx, states)
	f.bufs.Release()
}

// forgetGone drops the sandboxes the round did not list (their series
// become staleness candidates, their scraper state is forgotten), moves
// every sandbox's vanished series to the push phase, and trims the
// interner to what the live series can use.
func (f *Forwarder) forgetGone(states []*scrape.Target, round uint64) {
	var gone []*scrape.Target
	for id, st := range f.states {
		if st.Round != round {
			st.Cache.EvictAll()
			gone = append(gone, st)
			delete(f.states, id)
		}
	}
	for _, st := range states {
		f.push.Release(st.Cache)
	}
	for _, st := range gone {
		f.push.Release(st.Cache)
	}
	live := 0
	for _, st := range states {
		live += st.Cache.Len()
	}
	f.env.Reset(4*live + 4096)
	if fg, ok := f.deps.Scraper.(Forgetter); ok {
		for _, st := range gone {
			fg.Forget(st.Socket)
		}
	}
}

// newSnapshot builds the round's snapshot from the sandboxes' pull lines,
// merges it and counts what the parse and the merge left out.
func (f *Forwarder) newSnapshot(states []*scrape.Target, round uint64, start time.Time, noPull bool) *snapshot {
	snap := &snapshot{seq: round, at: start, ids: make([]string, len(states)), status: make([]SandboxStatus, len(states))}
	snap.NoPull = noPull
	snap.Out = make([]*exposition.Lines, len(states))
	for i, st := range states {
		snap.ids[i], snap.status[i], snap.Out[i] = st.ID, st.Status, st.Out
		if !noPull {
			st.OutHint = st.Out.Size()
		}
		st.Out = nil
	}
	for i, d := range scrape.CountDrops(states, snap.Merge(), &f.m.scrape, f.log) {
		snap.status[i].Dropped = d
	}
	return snap
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
