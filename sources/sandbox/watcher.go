package sandbox

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Watcher maintains the live set of sandboxes found under the configured
// roots. Readers (List, Get, Changes) are concurrency-safe and never touch the
// filesystem; the set is updated by Run (fsnotify plus periodic resync) and by
// Resync.
type Watcher struct {
	roots   []string
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	changes chan struct{}

	// syncMu serialises updates (stat + apply) so that a resync and an
	// fsnotify event cannot apply stale observations over fresh ones.
	syncMu sync.Mutex

	mu  sync.RWMutex
	set map[string]Sandbox
}

// New validates cfg, registers the metrics on reg (nil: not exported) and
// lists the roots once, so that List is right as soon as New returns. A root
// that does not exist yet is not an error; one that cannot be read is. New
// starts no goroutine: call Run to follow changes.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sandbox config: %w", err)
	}
	if logger == nil {
		return nil, errors.New("sandbox: nil logger")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	roots := make([]string, len(cfg.Roots))
	for i, r := range cfg.Roots {
		roots[i] = filepath.Clean(r)
	}
	w := &Watcher{
		roots:   roots,
		cfg:     cfg,
		logger:  logger,
		metrics: m,
		changes: make(chan struct{}, 1),
		set:     make(map[string]Sandbox),
	}
	if err := w.Resync(); err != nil {
		return nil, fmt.Errorf("initial sandbox scan: %w", err)
	}
	return w, nil
}

// List returns a copy of the live set sorted by ID. Concurrency-safe; the
// caller owns the returned slice.
func (w *Watcher) List() []Sandbox {
	w.mu.RLock()
	out := make([]Sandbox, 0, len(w.set))
	for _, s := range w.set {
		out = append(out, s)
	}
	w.mu.RUnlock()
	slices.SortFunc(out, func(a, b Sandbox) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Get looks id up in the live set. It is an exact membership test and never
// builds a path from id, so it is safe to call with raw request input.
// Concurrency-safe.
func (w *Watcher) Get(id string) (Sandbox, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	s, ok := w.set[id]
	return s, ok
}

// Changes returns a channel of capacity 1 that receives a value after the set
// changed. Sends never block, so several changes may collapse into one
// signal: on receipt, call List for the current state. The channel is never
// closed.
func (w *Watcher) Changes() <-chan struct{} {
	return w.changes
}

// Resync re-lists every root now and replaces the live set with the result.
// A root that cannot be read keeps the sandboxes previously seen under it and
// its error is returned (joined with others). Safe to call concurrently with
// Run; it blocks for the duration of the listing.
func (w *Watcher) Resync() error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	// Counted once the listing is the live set: a count seen means that
	// listing is done (before syncMu is released: defers run last first).
	defer w.metrics.resyncs.Inc()

	listed := make([][]string, len(w.roots))
	failed := make([]bool, len(w.roots))
	var errs []error
	for i, r := range w.roots {
		ids, err := listRoot(r)
		if err != nil {
			errs = append(errs, err)
			failed[i] = true
			continue
		}
		listed[i] = ids
	}

	w.mu.RLock()
	next := make(map[string]Sandbox, len(w.set))
	for i, r := range w.roots {
		if failed[i] {
			for id, s := range w.set {
				if _, taken := next[id]; !taken && s.Root == r {
					next[id] = s
				}
			}
			continue
		}
		for _, id := range listed[i] {
			if _, taken := next[id]; !taken {
				next[id] = newSandbox(r, id)
			}
		}
	}
	w.mu.RUnlock()

	w.replace(next)
	return errors.Join(errs...)
}

// refresh re-resolves one id after an fsnotify event about it.
func (w *Watcher) refresh(id string) {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	s, ok := resolve(w.roots, id)
	w.mu.RLock()
	next := make(map[string]Sandbox, len(w.set)+1)
	for k, v := range w.set {
		next[k] = v
	}
	w.mu.RUnlock()
	if ok {
		next[id] = s
	} else {
		delete(next, id)
	}
	w.replace(next)
}

// replace installs next as the live set, counts and logs the difference and
// signals Changes if anything changed. Callers hold syncMu.
func (w *Watcher) replace(next map[string]Sandbox) {
	w.mu.Lock()
	prev := w.set
	w.set = next
	w.mu.Unlock()

	changed := false
	for id, s := range next {
		old, ok := prev[id]
		switch {
		case !ok:
			w.metrics.added.Inc()
			w.logger.Debug("sandbox added", LogKey, id, "root", s.Root)
			changed = true
		case old != s:
			// Same id, other root: the shim socket moved.
			w.logger.Debug("sandbox moved", LogKey, id, "root", s.Root)
			changed = true
		}
	}
	for id, s := range prev {
		if _, ok := next[id]; !ok {
			w.metrics.removed.Inc()
			w.logger.Debug("sandbox removed", LogKey, id, "root", s.Root)
			changed = true
		}
	}
	w.metrics.sandboxes.Set(float64(len(next)))
	if changed {
		select {
		case w.changes <- struct{}{}:
		default:
		}
	}
}
