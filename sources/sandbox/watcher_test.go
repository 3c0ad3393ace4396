package sandbox

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestWatcher(t *testing.T, roots ...string) (*Watcher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	w, err := New(Config{Roots: roots, ResyncInterval: time.Hour}, testLogger(), reg)
	require.NoError(t, err)
	return w, reg
}

func mkdir(t *testing.T, parts ...string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(parts...), 0o755))
}

func ids(list []Sandbox) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.ID)
	}
	return out
}

// drain empties the Changes channel so that a later receive proves a new
// signal.
func drain(w *Watcher) {
	select {
	case <-w.Changes():
	default:
	}
}

func TestNewScansImmediately(t *testing.T) {
	root := t.TempDir()
	mkdir(t, root, "b")
	mkdir(t, root, "a")
	w, reg := newTestWatcher(t, root)

	require.Equal(t, []Sandbox{
		{ID: "a", Root: root, Socket: filepath.Join(root, "a", "shim-monitor.sock")},
		{ID: "b", Root: root, Socket: filepath.Join(root, "b", "shim-monitor.sock")},
	}, w.List())
	require.Equal(t, 2.0, testutil.ToFloat64(w.metrics.sandboxes))
	n, err := testutil.GatherAndCount(reg, "kata_monitor_sandboxes", "kata_monitor_sandbox_events_total",
		"kata_monitor_sandbox_resyncs_total", "kata_monitor_sandbox_watch_errors_total")
	require.NoError(t, err)
	require.Equal(t, 5, n) // events has added and removed
}

func TestNewMissingRootIsEmpty(t *testing.T) {
	w, _ := newTestWatcher(t, filepath.Join(t.TempDir(), "missing"))
	require.Empty(t, w.List())
}

func TestNewUnreadableRootFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err := New(Config{Roots: []string{file}, ResyncInterval: time.Hour}, testLogger(), nil)
	require.ErrorContains(t, err, "initial sandbox scan")
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{Roots: []string{"relative"}, ResyncInterval: time.Hour}, testLogger(), nil)
	require.ErrorContains(t, err, "roots[0]")
}

func TestNewRejectsDuplicateRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{Roots: []string{t.TempDir()}, ResyncInterval: time.Hour}
	_, err := New(cfg, testLogger(), reg)
	require.NoError(t, err)
	_, err = New(cfg, testLogger(), reg)
	require.ErrorContains(t, err, "register sandbox metrics")
}

func TestResyncConvergesMissedChanges(t *testing.T) {
	root := t.TempDir()
	mkdir(t, root, "gone")
	w, _ := newTestWatcher(t, root)
	drain(w)

	mkdir(t, root, "new")
	require.NoError(t, os.Remove(filepath.Join(root, "gone")))
	require.Equal(t, []string{"gone"}, ids(w.List()), "no Run: nothing may change before Resync")

	require.NoError(t, w.Resync())
	require.Equal(t, []string{"new"}, ids(w.List()))
	select {
	case <-w.Changes():
	default:
		t.Fatal("Changes not signalled after Resync changed the set")
	}
	require.Equal(t, 1.0, testutil.ToFloat64(w.metrics.removed))
	require.Equal(t, 2.0, testutil.ToFloat64(w.metrics.added))
	require.Equal(t, 2.0, testutil.ToFloat64(w.metrics.resyncs))
}

// TestResyncCountedWhenDone: sandbox_resyncs_total counts a listing once
// its result is the live set, so whoever sees the count (Run's tests wait
// for Run's re-listing that way) sees the listing's sandboxes. Counted as
// Resync began, it announced a listing still under way.
func TestResyncCountedWhenDone(t *testing.T) {
	root := t.TempDir()
	w, _ := newTestWatcher(t, root)
	before := testutil.ToFloat64(w.metrics.resyncs)
	mkdir(t, root, "late")
	done := make(chan error, 1)
	go func() { done <- w.Resync() }()
	require.Eventually(t, func() bool { return testutil.ToFloat64(w.metrics.resyncs) > before }, 5*time.Second, time.Millisecond)
	require.Equal(t, []string{"late"}, ids(w.List()), "the counted listing is the live set")
	require.NoError(t, <-done)
}

func TestResyncWithoutChangeDoesNotSignal(t *testing.T) {
	root := t.TempDir()
	mkdir(t, root, "a")
	w, _ := newTestWatcher(t, root)
	drain(w)
	require.NoError(t, w.Resync())
	select {
	case <-w.Changes():
		t.Fatal("Changes signalled although the set did not change")
	default:
	}
}

func TestOnlyDirectoriesCount(t *testing.T) {
	root := t.TempDir()
	other := t.TempDir()
	mkdir(t, root, "dir")
	mkdir(t, other, "target")
	require.NoError(t, os.WriteFile(filepath.Join(root, "file"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(other, "f"), []byte("x"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(other, "f"), filepath.Join(root, "link-to-file")))
	require.NoError(t, os.Symlink(filepath.Join(other, "target"), filepath.Join(root, "link-to-dir")))
	require.NoError(t, os.Symlink(filepath.Join(other, "nowhere"), filepath.Join(root, "dangling")))

	w, _ := newTestWatcher(t, root)
	require.Equal(t, []string{"dir", "link-to-dir"}, ids(w.List()))
}

func TestFirstRootWins(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	mkdir(t, first, "same")
	mkdir(t, second, "same")
	mkdir(t, second, "only-second")
	w, _ := newTestWatcher(t, first, second)

	s, ok := w.Get("same")
	require.True(t, ok)
	require.Equal(t, first, s.Root)
	require.Equal(t, filepath.Join(first, "same", "shim-monitor.sock"), s.Socket)
	s, ok = w.Get("only-second")
	require.True(t, ok)
	require.Equal(t, second, s.Root)

	require.NoError(t, os.Remove(filepath.Join(first, "same")))
	require.NoError(t, w.Resync())
	s, ok = w.Get("same")
	require.True(t, ok)
	require.Equal(t, second, s.Root, "the later root shows through once the first is gone")
}

func TestGetIsExactMembership(t *testing.T) {
	root := t.TempDir()
	mkdir(t, root, "abc")
	w, _ := newTestWatcher(t, root)

	tests := []struct {
		id   string
		want bool
	}{
		{"abc", true},
		{"ab", false},
		{"abc/", false},
		{"./abc", false},
		{"../" + filepath.Base(root) + "/abc", false},
		{"", false},
		{".", false},
		{"..", false},
		{"abc\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			_, ok := w.Get(tt.id)
			require.Equal(t, tt.want, ok)
		})
	}
}

func TestResyncKeepsEntriesOfUnreadableRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	mkdir(t, root, "kept")
	w, _ := newTestWatcher(t, root)

	// Replace the root by a file: listing it now fails.
	require.NoError(t, os.RemoveAll(root))
	require.NoError(t, os.WriteFile(root, nil, 0o644))
	require.Error(t, w.Resync())
	require.Equal(t, []string{"kept"}, ids(w.List()))
}

func TestListIsACopy(t *testing.T) {
	root := t.TempDir()
	mkdir(t, root, "a")
	w, _ := newTestWatcher(t, root)
	l := w.List()
	l[0].ID = "mutated"
	require.Equal(t, []string{"a"}, ids(w.List()))
}

func TestValidID(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"3f2a", true}, {"", false}, {".", false}, {"..", false}, {"a/b", false}, {"a\x00b", false}, {"...", true},
	} {
		t.Run(tt.id, func(t *testing.T) {
			require.Equal(t, tt.want, validID(tt.id))
		})
	}
}
