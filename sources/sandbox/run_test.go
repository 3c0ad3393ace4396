package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/background"
)

const (
	waitFor = 5 * time.Second
	tick    = 5 * time.Millisecond
)

// startRun runs w until the test ends and checks that Run returns nil once
// its context is cancelled.
func startRun(t *testing.T, w *Watcher) {
	t.Helper()
	background.Run(t, w.Run)
	// Run re-lists once after registering its watches: from then on, with
	// an hour-long ResyncInterval, only fsnotify can bring changes in.
	require.Eventually(t, func() bool { return testutil.ToFloat64(w.metrics.resyncs) >= 2 }, waitFor, tick)
}

func requireIDs(t *testing.T, w *Watcher, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	require.Eventually(t, func() bool {
		got := ids(w.List())
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if got[i] != want[i] {
				return false
			}
		}
		return true
	}, waitFor, tick, "want %v", want)
}

func TestRunFollowsEvents(t *testing.T) {
	root := t.TempDir()
	mkdir(t, root, "old")
	w, _ := newTestWatcher(t, root)
	startRun(t, w)
	resyncs := testutil.ToFloat64(w.metrics.resyncs)

	drain(w)
	mkdir(t, root, "a")
	mkdir(t, root, "b")
	requireIDs(t, w, "a", "b", "old")
	select {
	case <-w.Changes():
	case <-time.After(waitFor):
		t.Fatal("Changes not signalled")
	}

	require.NoError(t, os.Remove(filepath.Join(root, "a")))
	requireIDs(t, w, "b", "old")

	require.NoError(t, os.Rename(filepath.Join(root, "b"), filepath.Join(root, "c")))
	requireIDs(t, w, "c", "old")

	// Files created while running are ignored too.
	require.NoError(t, os.WriteFile(filepath.Join(root, "file"), nil, 0o644))
	mkdir(t, root, "z")
	requireIDs(t, w, "c", "old", "z")

	require.Equal(t, resyncs, testutil.ToFloat64(w.metrics.resyncs), "changes must come from fsnotify, not resync")
	require.Equal(t, 0.0, testutil.ToFloat64(w.metrics.watchErrors))
}

func TestRunRootCreatedLater(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "a", "b", "sbs")
	w, _ := newTestWatcher(t, root)
	startRun(t, w)
	require.Empty(t, w.List())

	mkdir(t, root, "first")
	requireIDs(t, w, "first")

	// The root itself is now watched: later sandboxes come through events.
	resyncs := testutil.ToFloat64(w.metrics.resyncs)
	mkdir(t, root, "second")
	requireIDs(t, w, "first", "second")
	require.Equal(t, resyncs, testutil.ToFloat64(w.metrics.resyncs))
}

func TestRunRootRemovedAndRecreated(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "sbs")
	mkdir(t, root, "x")
	w, _ := newTestWatcher(t, root)
	startRun(t, w)
	requireIDs(t, w, "x")

	require.NoError(t, os.RemoveAll(root))
	requireIDs(t, w)

	mkdir(t, root)
	mkdir(t, root, "y")
	requireIDs(t, w, "y")
	resyncs := testutil.ToFloat64(w.metrics.resyncs)
	mkdir(t, root, "z")
	requireIDs(t, w, "y", "z")
	require.Equal(t, resyncs, testutil.ToFloat64(w.metrics.resyncs), "the recreated root must be watched again")
}

func TestRunTwoRootsSameID(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	w, _ := newTestWatcher(t, first, second)
	startRun(t, w)

	mkdir(t, second, "same")
	require.Eventually(t, func() bool {
		s, ok := w.Get("same")
		return ok && s.Root == second
	}, waitFor, tick)

	mkdir(t, first, "same")
	require.Eventually(t, func() bool {
		s, ok := w.Get("same")
		return ok && s.Root == first
	}, waitFor, tick)

	require.NoError(t, os.Remove(filepath.Join(second, "same")))
	mkdir(t, first, "marker")
	requireIDs(t, w, "marker", "same")
	s, _ := w.Get("same")
	require.Equal(t, first, s.Root, "removing the shadowed copy must not drop the sandbox")

	require.NoError(t, os.Remove(filepath.Join(first, "same")))
	requireIDs(t, w, "marker")
}

// TestRunPeriodicResync: every ResyncInterval the roots are re-listed, so
// a sandbox whose event was missed shows up one interval later, and a
// watch error re-lists at once. The loop runs in a synctest bubble, where
// an hour passes at once; the fsnotify watcher is made outside it (its
// goroutine sits in a read syscall, which is not durably blocked and would
// stop the bubble's clock) and its channels are not used.
func TestRunPeriodicResync(t *testing.T) {
	root := t.TempDir()
	fw, err := fsnotify.NewWatcher()
	require.NoError(t, err)
	t.Cleanup(func() { _ = fw.Close() })
	synctest.Test(t, func(t *testing.T) {
		w, err := New(Config{Roots: []string{root}, ResyncInterval: time.Hour}, testLogger(), nil)
		require.NoError(t, err)
		resyncs := func() float64 { return testutil.ToFloat64(w.metrics.resyncs) }
		ctx, cancel := context.WithCancel(t.Context())
		events, errs := make(chan fsnotify.Event), make(chan error)
		done := make(chan struct{})
		go func() {
			w.loop(ctx, newWatchSet(fw), events, errs)
			close(done)
		}()
		synctest.Wait()
		r0 := resyncs()

		mkdir(t, root, "missed") // no event reaches the loop
		time.Sleep(time.Hour - time.Nanosecond)
		synctest.Wait()
		require.Empty(t, w.List())
		require.Equal(t, r0, resyncs())
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		require.Equal(t, []string{"missed"}, ids(w.List()))
		require.Equal(t, r0+1, resyncs())

		time.Sleep(2 * time.Hour)
		synctest.Wait()
		require.Equal(t, r0+3, resyncs())

		mkdir(t, root, "after-error")
		errs <- errors.New("queue overflow")
		synctest.Wait()
		require.Equal(t, []string{"after-error", "missed"}, ids(w.List()))
		require.Equal(t, r0+4, resyncs())
		require.Equal(t, 1.0, testutil.ToFloat64(w.metrics.watchErrors))

		cancel()
		<-done
	})
}
