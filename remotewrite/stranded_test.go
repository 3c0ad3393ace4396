package remotewrite

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// TestStrandedQueueReportedThenAdopted replays issue 10's case: an endpoint
// without name has a directory named from a hash of its URL; the same
// receiver written "localhost" instead of "127.0.0.1" gets a new, empty
// queue. The old directory is reported (warning with pending samples and
// oldest sample, gauges), and setting the endpoint's name to the old
// directory's name delivers every pending sample.
// Long because it is one story in three runs.
func TestStrandedQueueReportedThenAdopted(t *testing.T) {
	rc, up := newSwitchReceiver(t)
	walCfg := tempWAL(t)
	fast := func(c config.Config) config.Config {
		c = fastRetries(c)
		c.ApplyDefaults()
		return c
	}

	// Run 1: URL with 127.0.0.1, receiver down: 5 rounds stay pending.
	before := fast(config.Config{URL: rc.URL()})
	reg1 := prometheus.NewRegistry()
	q1, err := New(before, walCfg, testLogger(t), reg1)
	require.NoError(t, err)
	stop1 := runQueue(t, q1)
	const rounds, nSeries = 5, 3
	first := 1_700_000_000
	for r := range rounds {
		require.NoError(t, q1.Append(context.Background(), roundOf(first+r, nSeries)))
	}
	require.Eventually(t, func() bool { return gathered(t, reg1, "kata_monitor_remote_write_samples_failed_total") > 0 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop1())

	// Run 2: the same receiver spelled localhost: another directory.
	after := fast(config.Config{URL: strings.Replace(rc.URL(), "127.0.0.1", "localhost", 1)})
	require.NotEqual(t, before.Name, after.Name)
	// An unrelated directory is not a queue and is not reported.
	require.NoError(t, os.Mkdir(filepath.Join(walCfg.Dir, "lost+found"), 0o700))
	var logBuf bytes.Buffer
	reg := prometheus.NewRegistry()
	got, err := ReportStranded(walCfg, []config.Config{after}, slog.New(slog.NewTextHandler(&logBuf, nil)), reg)
	require.NoError(t, err)
	require.Equal(t, []StrandedQueue{{
		Dir: before.Name, PendingSamples: rounds * nSeries, PendingBlocks: rounds,
		OldestPending: time.UnixMilli(int64(first) * 1000),
	}}, got)
	require.Contains(t, logBuf.String(), "level=WARN")
	require.Contains(t, logBuf.String(), "name="+before.Name)
	require.Contains(t, logBuf.String(), "pending_samples=15")
	require.Contains(t, logBuf.String(), "oldest_sample=2023-11-14T22:13:20Z")
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP kata_monitor_remote_write_orphaned_queue_oldest_timestamp_seconds Timestamp of the oldest pending sample, at start, in a queue directory no remote_write endpoint owns; 0 when none is pending.
# TYPE kata_monitor_remote_write_orphaned_queue_oldest_timestamp_seconds gauge
kata_monitor_remote_write_orphaned_queue_oldest_timestamp_seconds{dir="`+before.Name+`"} 1.7e+09
# HELP kata_monitor_remote_write_orphaned_queue_pending_samples Samples pending, at start, in a queue directory under wal.dir that no remote_write endpoint owns (dir: its name). Set an endpoint's name to dir to send them.
# TYPE kata_monitor_remote_write_orphaned_queue_pending_samples gauge
kata_monitor_remote_write_orphaned_queue_pending_samples{dir="`+before.Name+`"} 15
`)))

	// Run 3: adopt it by name; the receiver is up: everything arrives.
	up.Store(true)
	adopt := after
	adopt.Name = before.Name
	got, err = ReportStranded(walCfg, []config.Config{adopt}, testLogger(t), nil)
	require.NoError(t, err)
	require.Empty(t, got, "owned again")
	reg3 := prometheus.NewRegistry()
	q3, err := New(adopt, walCfg, testLogger(t), reg3)
	require.NoError(t, err)
	stop3 := runQueue(t, q3)
	require.Eventually(t, func() bool {
		return gathered(t, reg3, "kata_monitor_remote_write_samples_sent_total") == rounds*nSeries
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop3())
	requireInOrder(t, rc.Stored(), nSeries, rounds)

	// Nothing pending any more: reported at Info level only.
	logBuf.Reset()
	got, err = ReportStranded(walCfg, []config.Config{after}, slog.New(slog.NewTextHandler(&logBuf, nil)), nil)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Zero(t, got[0].PendingSamples)
	require.NotContains(t, logBuf.String(), "level=WARN")
}

func TestReportStrandedWithoutWALDir(t *testing.T) {
	walCfg := config.DefaultWALConfig()
	walCfg.Dir = filepath.Join(t.TempDir(), "never-created")
	got, err := ReportStranded(walCfg, nil, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Empty(t, got)
}
