package remotewrite

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// TestUpgradeReplaysWALOfPreviousRelease replays a WAL written by the
// release before remote write 2.0 (testdata/wal-2026-11-29: record version
// 2, ack file version 1; round 1 acknowledged, rounds 2 to 4 of 12 series
// queued, 5 samples per block) with an endpoint now set to 2.0 and zstd:
// the old blocks go out as they were written (1.0, snappy, the format of
// every record before version 3), each sample once, in order, nothing
// lost or dropped.
func TestUpgradeReplaysWALOfPreviousRelease(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("testdata", "wal-2026-11-29", "upgrade"), filepath.Join(dir, "upgrade"))
	rc := newReceiver(t, func(int, *http.Request) (int, map[string]string) { return http.StatusNoContent, nil }).Start()
	cfg := config.Config{URL: rc.URL(), Name: "upgrade", ProtobufMessage: codec.MessageV2, Compression: codec.CompressionZstd}
	walCfg := config.DefaultWALConfig()
	walCfg.Dir = dir
	reg := prometheus.NewRegistry()
	q, err := New(cfg, walCfg, testLogger(t), reg)
	require.NoError(t, err)
	stop := runQueue(t, q)
	require.Eventually(t, func() bool { return gathered(t, reg, "kata_monitor_remote_write_samples_sent_total") == 36 }, 10*time.Second, 5*time.Millisecond)
	require.Zero(t, gathered(t, reg, "kata_monitor_remote_write_samples_dropped_total", "reason", "refused"))
	require.NoError(t, stop())
	got := rc.Stored()
	require.Len(t, got, 12)
	requireInOrder(t, got, 12, 3)
	for k, ss := range got {
		require.Equal(t, int64(2000), ss[0].Timestamp, "series %s starts with round 2", k)
	}
	for _, r := range rc.Requests() {
		require.Equal(t, "snappy", r.Header.Get("Content-Encoding"), "old blocks keep their format")
		require.Equal(t, codec.ContentTypeV1, r.Header.Get("Content-Type"))
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(to, 0o755))
	ents, err := os.ReadDir(from)
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o644))
	}
}
