package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxWatchAttempts bounds how often ensureWatches retries when directories
// appear or vanish while it registers watches.
const maxWatchAttempts = 8

// watchSet is the fsnotify state owned by the Run goroutine: which paths are
// watched (roots that exist, or the nearest existing parent of a root that
// does not exist yet).
type watchSet struct {
	fw     *fsnotify.Watcher
	paths  map[string]bool
	warned map[string]bool
}

func newWatchSet(fw *fsnotify.Watcher) *watchSet {
	return &watchSet{fw: fw, paths: make(map[string]bool), warned: make(map[string]bool)}
}

// Run follows the roots with fsnotify and re-lists them every ResyncInterval
// so that missed events converge. A root that does not exist yet is watched
// through its nearest existing parent and picked up as soon as it appears.
// Run blocks until ctx ends, then closes the fsnotify watcher and returns nil;
// it returns an error only if fsnotify cannot be started. Call it once.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("start fsnotify: %w", err)
	}
	ws := newWatchSet(fw)
	defer func() {
		if err := fw.Close(); err != nil {
			w.logger.Warn("close fsnotify watcher", "err", err)
		}
	}()

	w.ensureWatches(ws)
	// Sandboxes may have come or gone between New's scan and the watches.
	w.resync()
	w.loop(ctx, ws, fw.Events, fw.Errors)
	return nil
}

// loop is Run's event loop: events and errors are the fsnotify watcher's
// channels (a test passes its own), and every ResyncInterval the watches
// are checked and the roots re-listed. It returns when ctx ends or a
// channel is closed.
func (w *Watcher) loop(ctx context.Context, ws *watchSet, events <-chan fsnotify.Event, errs <-chan error) {
	ticker := time.NewTicker(w.cfg.ResyncInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			w.handleEvent(ws, ev)
		case err, ok := <-errs:
			if !ok {
				return
			}
			w.metrics.watchErrors.Inc()
			w.logger.Warn("sandbox watch error, re-listing roots", "err", err)
			w.resync()
		case <-ticker.C:
			w.ensureWatches(ws)
			w.resync()
		}
	}
}

// resync is Resync for the Run loop, which owns the decision to log.
func (w *Watcher) resync() {
	if err := w.Resync(); err != nil {
		w.logger.Warn("sandbox resync", "err", err)
	}
}

func (w *Watcher) handleEvent(ws *watchSet, ev fsnotify.Event) {
	if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
		return
	}
	path := filepath.Clean(ev.Name)
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		// fsnotify drops the watch of a directory that is removed or moved
		// away; forget it so that ensureWatches re-adds it if it comes back.
		delete(ws.paths, path)
	}
	if w.isRoot(filepath.Dir(path)) {
		w.refresh(filepath.Base(path))
	}
	if w.onRootChain(path) {
		// A root, or a parent of one, appeared or vanished.
		w.ensureWatches(ws)
		w.resync()
	}
}

func (w *Watcher) isRoot(p string) bool {
	for _, r := range w.roots {
		if r == p {
			return true
		}
	}
	return false
}

// onRootChain reports whether p is a root or one of its parents.
func (w *Watcher) onRootChain(p string) bool {
	prefix := p
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	for _, r := range w.roots {
		if r == p || strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}

// nearestDir returns p if it is a directory, else its nearest parent that is.
func nearestDir(p string) string {
	for {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// ensureWatches makes the watched paths match the roots: each existing root
// is watched itself, each missing one through its nearest existing parent.
// Directories may change while watches are registered, so it re-checks and
// retries a bounded number of times; the periodic resync covers the rest.
func (w *Watcher) ensureWatches(ws *watchSet) {
	for range maxWatchAttempts {
		want := make(map[string]bool, len(w.roots))
		for _, r := range w.roots {
			want[nearestDir(r)] = true
		}
		for p := range ws.paths {
			if !want[p] {
				// Errors only mean fsnotify already dropped it.
				_ = ws.fw.Remove(p)
				delete(ws.paths, p)
			}
		}
		stable := true
		for p := range want {
			if ws.paths[p] {
				continue
			}
			if err := ws.fw.Add(p); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					stable = false
					continue
				}
				w.metrics.watchErrors.Inc()
				if !ws.warned[p] {
					ws.warned[p] = true
					w.logger.Warn("watch sandbox root", "path", p, "err", err)
				}
				continue
			}
			delete(ws.warned, p)
			ws.paths[p] = true
		}
		for _, r := range w.roots {
			// A path that failed for another reason than vanishing is left
			// to the next resync rather than retried here.
			if p := nearestDir(r); !ws.paths[p] && !ws.warned[p] {
				stable = false
			}
		}
		if stable {
			return
		}
	}
}
