package wal

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// TestInspect: Inspect reports what a queue has pending, read-only and
// without the lock, so it works on a directory an open Queue holds, and
// the Queue goes on working afterwards.
func TestInspect(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q := openTest(t, Config{Dir: dir, SegmentSize: 32 << 10})
	blk := func(ts int64, n int) Block {
		return Block{Samples: n, MinTimestamp: ts, MaxTimestamp: ts, Data: payload(uint64(ts), 4<<10)}
	}
	for i := range 20 {
		require.NoError(t, q.Append([]Block{blk(int64(1000+i), 3), blk(int64(1000+i), 2)}))
	}
	got, err := q.Next(context.Background(), 2)
	require.NoError(t, err)
	require.NoError(t, q.Ack(got[1].Seq))

	s, err := disk.Inspect(dir)
	require.NoError(t, err)
	st := q.Stats()
	require.Equal(t, st.PendingBlocks, s.PendingBlocks)
	require.Equal(t, st.PendingSamples, s.PendingSamples)
	require.Equal(t, 19*5, s.PendingSamples)
	require.EqualValues(t, 1001, s.OldestPending)
	require.Equal(t, st.Segments, s.Segments)
	require.Positive(t, s.Bytes)
	require.True(t, disk.IsQueueDir(dir))

	// The owner is undisturbed: still appends and acks.
	require.NoError(t, q.Append([]Block{blk(5000, 1)}))
	got, err = q.Next(context.Background(), 2)
	require.NoError(t, err)
	require.NoError(t, q.Ack(got[len(got)-1].Seq))

	empty := t.TempDir()
	require.False(t, disk.IsQueueDir(empty))
	s, err = disk.Inspect(empty)
	require.NoError(t, err)
	require.Zero(t, s.PendingBlocks)
	_, err = disk.Inspect(filepath.Join(empty, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestInspectTenantsFastAck: a tenant's position that is in the fast ack
// file only (the ack file is the timer's, an hour away) counts as done, as
// Open would take it.
func TestInspectTenantsFastAck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q, sts := openTenants(t, Config{Dir: dir, SegmentSize: 32 << 10, AckInterval: time.Hour}, "a", "b")
	for range 3 {
		appendRound(t, q, 2, 100, "a", "b")
	}
	bs := nextNow(t, sts["a"])
	require.NoError(t, sts["a"].Ack(bs[len(bs)-1].Seq))
	_, err := os.Stat(filepath.Join(dir, disk.AckFileName))
	require.ErrorIs(t, err, os.ErrNotExist, "no ack file yet")
	s, err := disk.Inspect(dir)
	require.NoError(t, err)
	require.Equal(t, 10, s.PendingBlocks, "a's first group is done")
	require.Equal(t, q.Stats().PendingBlocks, s.PendingBlocks)
}
