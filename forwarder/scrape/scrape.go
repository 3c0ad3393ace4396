// Package scrape is the scrape stage of the forwarder: it scrapes the
// sandboxes of one round in parallel (bounded concurrency, per-shim timeout,
// a fixed jitter per sandbox in scheduled rounds, in ten waves), parses
// each exposition into the sandbox's scrape cache and pull lines
// (forwarder/scrapecache) inside its concurrency slot, and judges the outcome: a failed scrape of a
// sandbox that went away meanwhile is its end, not a failure; the others
// are counted and logged once per streak, and the samples left out are
// counted by reason. It keeps what it needs across rounds in one Target per
// sandbox. Imports go one way: forwarder -> scrape -> scrapecache,
// exposition, sources.
package scrape

import (
	"context"
	"errors"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/kata-containers/kata-monitor/sources/shim"
)

// Source fetches one shim's exposition (sources/shim implements it).
// Scrape appends the body to dst[:0] and returns it with the answer's
// Content-Type, which picks the parser (text/plain, the default when empty,
// or application/openmetrics-text), so one buffer can be reused across
// scrapes; it must honour ctx and be safe for concurrent calls on different
// sockets.
type Source interface {
	Scrape(ctx context.Context, socket string, dst []byte) ([]byte, string, error)
}

// Metrics are the collectors a round's scrapes update; the forwarder
// registers them (their names are upstream kata-monitor's where it has
// them).
type Metrics struct {
	Scrapes        prometheus.Counter     // every scrape started
	ScrapesFailed  prometheus.Counter     // failed scrapes of sandboxes still live
	ScrapeDuration prometheus.Histogram   // transport time, milliseconds
	ParseErrors    prometheus.Counter     // expositions that failed to parse
	InvalidSeries  prometheus.Counter     // samples with invalid names or values
	Duplicates     prometheus.Counter     // samples of a series seen earlier in the exposition
	Dropped        *prometheus.CounterVec // samples left out, by exposition.DropReason
}

// Round is one round's scrape settings and collaborators. Build one per
// round; All may be called once.
type Round struct {
	Source    Source
	Env       *scrapecache.Env
	Buffers   *Buffers
	Metrics   *Metrics
	Log       *slog.Logger
	Now       func() time.Time // the round clock, for Status.LastScrape
	Timeout   time.Duration    // one shim scrape
	JitterMax time.Duration    // added to the round's budget when Scheduled
	// Concurrency is how many scrapes (and parses) run at once.
	Concurrency int
	Number      uint64 // the round's number
	Scheduled   bool   // a scheduled round: scrapes wait for their jitter
	Collect     bool   // keep push samples in the caches
	// Live lists the live set again, to tell a failed scrape of a sandbox
	// that went away from a failure.
	Live func() []sandbox.Sandbox
}

// All scrapes and parses every target in parallel (at most Concurrency at
// once), then judges the failures. One hung shim costs only its own series:
// All returns after Timeout (plus JitterMax in scheduled rounds) at worst.
func (r *Round) All(ctx context.Context, targets []*Target) {
	budget := r.Timeout
	if r.Scheduled {
		budget += r.JitterMax
	}
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	sem := make(chan struct{}, r.Concurrency)
	began := time.Now() // the jitters count from here: a slot's timers fire together
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() { r.one(rctx, t, sem, began) })
	}
	wg.Wait()
	r.judgeFailures(targets)
}

// jitterSlots is how many distinct jitters the sandboxes get: their
// scheduled scrapes start in jitterSlots waves spread over the first part
// of the interval, a wave's scrapes together (at most Concurrency at
// once). A jitter of its own per sandbox woke the idle process once per
// scrape, and those wake-ups (timer, scheduler, futex) were 16 % of the
// daemon's CPU at 200 sandboxes (docs/benchmarks.md, "Push cost, session
// 5"); ten waves still spread the load on the host.
const jitterSlots = 10

// jitterFor spreads scheduled scrapes over the first part of the interval
// ([0, max)), in jitterSlots waves, the same wave for a sandbox every
// round.
func jitterFor(id string, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return time.Duration(h.Sum64()%jitterSlots) * (max / jitterSlots)
}

// one scrapes and parses one sandbox; it runs in its own goroutine and
// touches only t. It waits for the sandbox's jitter (scheduled rounds),
// then holds a concurrency slot for the scrape and the parse, so at most
// Concurrency scrape buffers are in use at once.
func (r *Round) one(ctx context.Context, t *Target, sem chan struct{}, began time.Time) {
	t.Status = Status{LastScrape: r.Now()}
	t.drops = exposition.DropCounts{}
	r.Metrics.Scrapes.Inc()
	err := waitSlot(ctx, t, sem, r.Scheduled, began)
	var body []byte
	var ct string
	if err == nil {
		defer func() { <-sem }()
		body, ct, err = r.fetch(ctx, t)
		defer r.Buffers.Put(body) // after the parse
		if err == nil {
			err = scrapecache.CheckFormat(ct) // a format we did not ask for: the scrape failed
		}
	}
	if err != nil {
		// Counted and logged by judgeFailures once the round knows
		// whether the sandbox still exists.
		t.scrapeErr = err
		t.Status.Err = shim.Printable(err.Error())
		t.Cache.EvictAll()
		return
	}
	t.scrapeErr = nil
	if t.failing {
		r.Log.Info("scrape shim recovered", sandbox.LogKey, t.ID)
	}
	t.failing = false
	r.parse(t, body, ct)
}

// parse reads one sandbox's exposition into its cache and pull lines and
// counts what it left out.
func (r *Round) parse(t *Target, body []byte, contentType string) {
	ps, perr := t.Cache.Parse(r.Env, body, contentType, r.Number, r.Collect, t.Out)
	t.Status.Series = t.Cache.Live()
	if ps.Duplicates > 0 {
		r.Metrics.Duplicates.Add(float64(ps.Duplicates))
	}
	if ps.Invalid > 0 {
		r.Metrics.InvalidSeries.Add(float64(ps.Invalid))
	}
	t.drops[exposition.DropDuplicate], t.drops[exposition.DropInvalid], t.drops[exposition.DropInvalidForType] = ps.Duplicates, ps.Invalid, ps.Unrenderable
	if perr != nil {
		r.Metrics.ParseErrors.Inc()
		t.Status.Err = shim.Printable("parse: " + perr.Error())
		if !t.parseFailing {
			r.Log.Warn("invalid shim exposition, keeping the series before the error", sandbox.LogKey, t.ID, "err", perr)
		}
	}
	t.parseFailing = perr != nil
}

// waitSlot waits until the sandbox's jitter past began (scheduled rounds)
// and takes a concurrency slot; the caller releases it.
func waitSlot(ctx context.Context, t *Target, sem chan struct{}, scheduled bool, began time.Time) error {
	if scheduled && t.Jitter > 0 {
		tm := time.NewTimer(time.Until(began.Add(t.Jitter)))
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		case <-tm.C:
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
func (r *Round) fetch(ctx context.Context, t *Target) ([]byte, string, error) {
	sctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	began := time.Now()
	body, ct, err := r.Source.Scrape(sctx, t.Socket, r.Buffers.Get())
	dur := time.Since(began)
	t.Status.Duration = dur
	r.Metrics.ScrapeDuration.Observe(float64(dur) / float64(time.Millisecond))
	return body, ct, err
}

// judgeFailures counts and logs the failed scrapes of a round, except
// those of sandboxes that are gone (the pod was deleted while its scrape
// was in flight): a vanished shim is the end of a sandbox, not a failure.
// Runs in the round's sequential phase.
func (r *Round) judgeFailures(targets []*Target) {
	var live map[string]bool
	for _, t := range targets {
		if t.scrapeErr == nil {
			continue
		}
		if live == nil {
			list := r.Live()
			live = make(map[string]bool, len(list))
			for _, sb := range list {
				live[sb.ID] = true
			}
		}
		if !live[t.ID] || dirGone(t.Root, t.Socket) {
			r.Log.Debug("sandbox went away during its scrape", sandbox.LogKey, t.ID, "err", t.scrapeErr)
			t.Status.Err = ""
			t.scrapeErr = nil
			continue
		}
		r.Metrics.ScrapesFailed.Inc()
		if !t.failing {
			r.Log.Warn("scrape shim failed", sandbox.LogKey, t.ID, "err", t.Status.Err)
		}
		t.failing = true
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

// CountDrops adds the samples left out of targets[i] this round (at parse,
// plus merged[i] from the merge when merged is not nil) to
// kata_monitor_series_dropped_total and returns them by reason name for
// each target (nil when none); it logs a reason the first round it appears
// for a sandbox (again only after a round without it).
func CountDrops(targets []*Target, merged []exposition.DropCounts, m *Metrics, log *slog.Logger) []map[string]int {
	out := make([]map[string]int, len(targets))
	for i, t := range targets {
		d := t.drops
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
			m.Dropped.WithLabelValues(exposition.DropReason(r).String()).Add(float64(n))
			if t.dropLogged&bit == 0 {
				log.Warn("shim samples left out", sandbox.LogKey, t.ID, "reason", exposition.DropReason(r).String(), "samples", n)
			}
		}
		t.dropLogged = logged
		out[i] = d.ByName()
	}
	return out
}
