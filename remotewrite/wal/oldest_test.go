package wal

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOldestPending: Stats.OldestPending is the MinTimestamp of the oldest
// block neither acked nor dropped, handed out or not, and survives a
// restart (it is in the record).
func TestOldestPending(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q := openTest(t, Config{Dir: dir})
	require.Zero(t, q.Stats().PendingBlocks)
	require.Zero(t, q.Stats().OldestPending)

	blk := func(minTs int64) Block {
		return Block{Samples: 1, MinTimestamp: minTs, MaxTimestamp: minTs + 500, Data: []byte("x")}
	}
	require.NoError(t, q.Append([]Block{blk(1000), blk(1100)}))
	require.NoError(t, q.Append([]Block{blk(2000)}))
	require.EqualValues(t, 1000, q.Stats().OldestPending)

	got, err := q.Next(context.Background(), 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.EqualValues(t, 1000, q.Stats().OldestPending, "handed out but not acked: still pending")
	require.NoError(t, q.Ack(got[1].Seq))
	require.EqualValues(t, 2000, q.Stats().OldestPending)
	require.NoError(t, q.Close())

	q2 := openTest(t, Config{Dir: dir})
	st := q2.Stats()
	require.Equal(t, 1, st.PendingBlocks)
	require.EqualValues(t, 2000, st.OldestPending, "from the record after a restart")
	got, err = q2.Next(context.Background(), 10)
	require.NoError(t, err)
	require.NoError(t, q2.Ack(got[0].Seq))
	require.Zero(t, q2.Stats().PendingBlocks)
}
