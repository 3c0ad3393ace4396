package wal

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestAppendNextAck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		memory int64 // 0 (the default): every read comes from disk
		seg    int
	}{
		{"memory", 8 << 20, 0},
		{"disk", 0, 0},
		{"disk_small_segments", 0, 32 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ep")
			q := openTest(t, Config{Dir: dir, MemoryBytes: tc.memory, SegmentSize: tc.seg})
			var appended []Block
			for _, n := range []int{3, 1, 4, 2} { // four groups
				appended = append(appended, appendN(t, q, n, 5000)...)
			}
			require.Equal(t, seqRange(1, 10), seqs(appended))
			require.Equal(t, []uint64{1, 1, 1, 4, 5, 5, 5, 5, 9, 9}, func() []uint64 {
				var g []uint64
				for _, b := range appended {
					g = append(g, b.Group)
				}
				return g
			}())

			ctx := context.Background()
			var got [][]uint64
			for range 5 {
				bs, err := q.Next(ctx, 3)
				require.NoError(t, err)
				for _, b := range bs {
					require.Equal(t, bs[0].Group, b.Group, "groups never mixed")
				}
				requireIntact(t, bs, 5000)
				got = append(got, seqs(bs))
			}
			require.Equal(t, [][]uint64{{1, 2, 3}, {4}, {5, 6, 7}, {8}, {9, 10}}, got)
			st := q.Stats()
			require.Equal(t, 10, st.PendingBlocks)
			require.NoError(t, q.Ack(7))
			require.Error(t, q.Ack(11), "beyond handed out")
			st = q.Stats()
			require.Equal(t, uint64(7), st.AckedSeq)
			require.Equal(t, uint64(10), st.LastSeq)
			require.Equal(t, 3, st.PendingBlocks)
			require.Equal(t, 9%7+1+10%7+1+8%7+1, st.PendingSamples)
			require.NoError(t, q.Ack(10))
			require.Equal(t, 0, q.Stats().PendingSamples)
			require.Empty(t, drain(t, q, 10))
		})
	}
}

func TestReplayAfterReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	cfg := Config{Dir: dir, SegmentSize: 32 << 10}
	q, err := Open(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	for range 10 {
		appendN(t, q, 2, 6000) // 20 blocks over several segments
	}
	bs, err := q.Next(context.Background(), 2)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2}, seqs(bs))
	bs, err = q.Next(context.Background(), 2)
	require.NoError(t, err)
	require.Equal(t, []uint64{3, 4}, seqs(bs))
	require.NoError(t, q.Ack(2)) // 3 and 4 handed out but not acked
	require.NoError(t, q.Close())
	require.ErrorIs(t, q.Close(), ErrClosed)

	reg := prometheus.NewRegistry()
	q, err = Open(cfg, nil, reg)
	require.NoError(t, err)
	defer q.Close()
	st := q.Stats()
	require.Equal(t, uint64(2), st.AckedSeq)
	require.Equal(t, uint64(20), st.LastSeq)
	require.Equal(t, 18, st.PendingBlocks)
	got := drain(t, q, 100)
	require.Equal(t, seqRange(3, 20), seqs(got), "unacked blocks come again, acked ones never")
	requireIntact(t, got, 6000)
	require.Equal(t, 0, corruptions(q))

	more := appendN(t, q, 1, 10)
	require.Equal(t, uint64(21), more[0].Seq, "seqs continue after a restart")
}

func TestSeqHighWaterAfterFullAck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q, err := Open(Config{Dir: dir}, nil, nil)
	require.NoError(t, err)
	appendN(t, q, 5, 100)
	require.Len(t, drain(t, q, 10), 5)
	require.NoError(t, q.Ack(5))
	require.NoError(t, q.Close())
	q, err = Open(Config{Dir: dir}, nil, nil)
	require.NoError(t, err)
	defer q.Close()
	require.Equal(t, 1, q.Stats().Segments, "acked segments deleted, only the new active one remains")
	require.Equal(t, uint64(6), appendN(t, q, 1, 100)[0].Seq)
}

func TestCrashWithoutClose(t *testing.T) {
	for _, policy := range []FsyncPolicy{FsyncAppend, FsyncSegment} {
		t.Run(string(policy), func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "ep")
			q := openTest(t, Config{Dir: dir, SegmentSize: 64 << 10, Fsync: policy})
			for range 6 {
				appendN(t, q, 3, 7000)
			}
			require.Len(t, drain(t, q, 3), 18)
			require.NoError(t, q.Ack(6))
			// The process dies here: the files are what the disk holds.
			crashed := filepath.Join(root, "crashed", "ep")
			copyDir(t, dir, crashed)

			r := openTest(t, Config{Dir: crashed, SegmentSize: 64 << 10})
			got := drain(t, r, 100)
			require.Equal(t, seqRange(7, 18), seqs(got))
			requireIntact(t, got, 7000)
			require.Equal(t, 0, corruptions(r))
			require.Equal(t, uint64(19), appendN(t, r, 1, 10)[0].Seq)
		})
	}
}

func TestSecondOpenOfLockedDirFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q, err := Open(Config{Dir: dir}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	_, err = Open(Config{Dir: dir}, nil, prometheus.NewRegistry())
	require.ErrorContains(t, err, "lock wal dir")
	require.NoError(t, q.Close())
	q, err = Open(Config{Dir: dir}, nil, prometheus.NewRegistry())
	require.NoError(t, err, "lock released by Close")
	require.NoError(t, q.Close())
}

func TestSameRegistryReopen(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := filepath.Join(t.TempDir(), "ep")
	q, err := Open(Config{Dir: dir}, nil, reg)
	require.NoError(t, err)
	_, err = Open(Config{Dir: filepath.Join(t.TempDir(), "ep")}, nil, reg)
	require.ErrorContains(t, err, "register", "same endpoint name twice on one registry")
	require.NoError(t, q.Close())
	q, err = Open(Config{Dir: dir}, nil, reg)
	require.NoError(t, err, "Close unregisters")
	require.NoError(t, q.Close())
}

// TestWlogMetricsPerEndpoint: the segment writer's own metrics are exposed,
// one series per endpoint on a shared registry, and leave with Close.
func TestWlogMetricsPerEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	root := t.TempDir()
	a, err := Open(Config{Dir: filepath.Join(root, "a")}, nil, reg)
	require.NoError(t, err)
	b, err := Open(Config{Dir: filepath.Join(root, "b")}, nil, reg)
	require.NoError(t, err)
	appendN(t, a, 3, 100)

	flushes := func(endpoint string) (float64, bool) {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() != "kata_monitor_prometheus_tsdb_wal_page_flushes_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "endpoint" && l.GetValue() == endpoint {
						return m.GetCounter().GetValue(), true
					}
				}
			}
		}
		return 0, false
	}
	got, ok := flushes("a")
	require.True(t, ok, "endpoint a's wlog metrics registered")
	require.Positive(t, got, "the append flushed pages")
	got, ok = flushes("b")
	require.True(t, ok, "endpoint b's wlog metrics registered beside a's")
	require.Zero(t, got)

	require.NoError(t, a.Close())
	_, ok = flushes("a")
	require.False(t, ok, "Close unregisters wlog's metrics")
	require.NoError(t, b.Close())
	a, err = Open(Config{Dir: filepath.Join(root, "a")}, nil, reg)
	require.NoError(t, err, "reopen on the same registry")
	require.NoError(t, a.Close())
}
