package wal

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stretchr/testify/require"
)

// TestBudgetAccounting appends far more than MaxSize while a slow reader
// acks some blocks and holds others, and proves that every appended sample
// is acked, dropped or pending, and that the reader sees gaps but never a
// reordering.
// Long because the writer, the slow reader and the final accounting
// share their counts.
func TestBudgetAccounting(t *testing.T) {
	for _, tc := range []struct {
		name   string
		memory int64
		seed   uint64
	}{
		{"memory_tail", 0, 1},
		{"disk_reads", 1, 2},
		{"small_memory", 40 << 10, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const maxSize = 160 << 10
			dir := filepath.Join(t.TempDir(), "ep")
			q := openTest(t, Config{Dir: dir, MaxSize: maxSize, SegmentSize: 32 << 10, MemoryBytes: tc.memory, Fsync: FsyncSegment})
			rng := rand.New(rand.NewPCG(tc.seed, 0))
			ctx := context.Background()
			appendedSamples, ackedSamples := 0, 0
			var seen []Block
			var held []Block // handed out, not acked yet
			for range 300 {
				n := 1 + rng.IntN(3)
				for _, b := range appendN(t, q, n, 1000+rng.IntN(6000)) {
					appendedSamples += b.Samples
				}
				require.LessOrEqual(t, q.Stats().Bytes, int64(maxSize+32<<10), "within budget plus the page being written")
				switch rng.IntN(4) {
				case 0: // read and hold
					if q.Stats().PendingBlocks > len(held) {
						bs, err := q.Next(ctx, 4)
						require.NoError(t, err)
						held = append(held, bs...)
						seen = append(seen, bs...)
					}
				case 1: // ack everything held
					if len(held) > 0 {
						require.NoError(t, q.Ack(held[len(held)-1].Seq))
						for _, b := range held {
							ackedSamples += b.Samples
						}
						held = nil
					}
				}
			}
			// Drain and ack the rest.
			bs := drain(t, q, 5)
			seen = append(seen, bs...)
			held = append(held, bs...)
			if len(held) > 0 {
				require.NoError(t, q.Ack(held[len(held)-1].Seq))
				for _, b := range held {
					ackedSamples += b.Samples
				}
			}
			dropBlocks, dropSamples := dropped(q, reasonBudget)
			require.Positive(t, dropBlocks, "the budget must have bitten")
			st := q.Stats()
			require.Equal(t, 0, st.PendingSamples)
			require.Equal(t, appendedSamples, ackedSamples+dropSamples+st.PendingSamples)
			last := q.Stats().LastSeq
			require.Equal(t, int(last), len(seen)+dropBlocks, "every block seen or dropped, once")
			requireIntactAnySize(t, seen)
			wb, ws := dropped(q, reasonWriteError)
			cb, cs := dropped(q, reasonCorrupt)
			require.Zero(t, wb+ws+cb+cs)
		})
	}
}

// TestBudgetAccountingMidway checks the identity while blocks are pending
// and held, not only after a full drain.
func TestBudgetAccountingMidway(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q := openTest(t, Config{Dir: dir, MaxSize: 96 << 10, SegmentSize: 32 << 10})
	appended := 0
	for _, b := range appendN(t, q, 3, 8000) {
		appended += b.Samples
	}
	held, err := q.Next(context.Background(), 2) // seq 1, 2 held, never acked
	require.NoError(t, err)
	for range 30 {
		for _, b := range appendN(t, q, 1, 8000) {
			appended += b.Samples
		}
	}
	_, dropSamples := dropped(q, reasonBudget)
	st := q.Stats()
	heldSamples := held[0].Samples + held[1].Samples
	require.Equal(t, appended, dropSamples+st.PendingSamples, "nothing acked yet")
	require.GreaterOrEqual(t, st.PendingSamples, heldSamples, "held blocks stay pending though their segment is gone")
	require.NoError(t, q.Ack(held[1].Seq))
	require.Equal(t, st.PendingSamples-heldSamples, q.Stats().PendingSamples)
	next := drain(t, q, 1)
	require.Greater(t, next[0].Seq, uint64(4), "gap after the dropped segments")
	requireIntactAnySize(t, next)
}

func TestSingleSegmentOverBudgetIsCut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q := openTest(t, Config{Dir: dir, MaxSize: 40 << 10, SegmentSize: 1 << 20})
	appendN(t, q, 1, 30<<10)
	require.Equal(t, 1, q.Stats().Segments)
	appendN(t, q, 1, 30<<10) // 60 KiB in one segment: cut, then the old one goes
	st := q.Stats()
	require.LessOrEqual(t, st.Bytes, int64(40<<10))
	blocks, _ := dropped(q, reasonBudget)
	require.Equal(t, 2, blocks)
	require.Equal(t, 0, st.PendingBlocks)
	require.Empty(t, drain(t, q, 10))
	appendN(t, q, 1, 100)
	require.Equal(t, []uint64{3}, seqs(drain(t, q, 10)))
}

// requireIntactAnySize checks order and payloads of blocks of varying size.
func requireIntactAnySize(t *testing.T, bs []Block) {
	t.Helper()
	var last uint64
	for _, b := range bs {
		require.Greater(t, b.Seq, last)
		last = b.Seq
		require.Equal(t, payload(b.Seq, len(b.Data)), b.Data)
	}
}

// TestBudgetInflightAtClose holds blocks handed out by Next while the disk
// budget deletes their segment, then closes the queue without acking:
// those blocks can be sent by nobody any more, so Close counts them
// dropped, and every appended block is dropped or replayed after a
// restart, once.
func TestBudgetInflightAtClose(t *testing.T) {
	for _, tc := range []struct {
		name   string
		memory int64
	}{
		{"memory_tail", 1 << 20},
		{"disk_reads", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ep")
			cfg := Config{Dir: dir, MaxSize: 96 << 10, SegmentSize: 32 << 10, MemoryBytes: tc.memory, Fsync: FsyncSegment}
			q, err := Open(cfg, nil, prometheus.NewRegistry())
			require.NoError(t, err)
			appended := map[uint64]int{}
			for _, b := range appendN(t, q, 3, 4000) {
				appended[b.Seq] = b.Samples
			}
			held, err := q.Next(context.Background(), 3)
			require.NoError(t, err)
			require.Len(t, held, 3)
			for range 40 { // far past the budget: the held blocks' segment goes
				for _, b := range appendN(t, q, 1, 4000) {
					appended[b.Seq] = b.Samples
				}
			}
			require.False(t, q.def.onDisk(held[0].Seq), "the budget deleted the held blocks' segment")
			bBefore, _ := dropped(q, reasonBudget)
			require.NoError(t, q.Close())
			bAfter, sAfter := dropped(q, reasonBudget)
			require.Equal(t, bBefore+len(held), bAfter, "held blocks of a deleted segment counted at Close")

			q2 := openTest(t, cfg)
			replayed := drain(t, q2, 100)
			samples := 0
			for _, b := range replayed {
				require.Contains(t, appended, b.Seq)
				samples += b.Samples
			}
			total := 0
			for _, s := range appended {
				total += s
			}
			require.Equal(t, len(appended), bAfter+len(replayed), "every block dropped or replayed, once")
			require.Equal(t, total, sAfter+samples)
		})
	}
}

// TestBudgetInflightAtCloseTenants: the same with tenant streams, each
// counting its own held blocks.
func TestBudgetInflightAtCloseTenants(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	cfg := Config{Dir: dir, MaxSize: 96 << 10, SegmentSize: 32 << 10, Tenants: true, Fsync: FsyncSegment}
	q, err := Open(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	a, err := q.Stream("a", 0, nil)
	require.NoError(t, err)
	b, err := q.Stream("b", 0, nil)
	require.NoError(t, err)
	data := func() []Block { return []Block{{Samples: 3, Data: make([]byte, 4000)}} }
	for range 2 {
		require.NoError(t, a.Append(data()))
		require.NoError(t, b.Append(data()))
	}
	var heldA []Block
	for len(heldA) < 2 { // one group per Next
		bs, err := a.Next(context.Background(), 2)
		require.NoError(t, err)
		heldA = append(heldA, bs...)
	}
	heldB, err := b.Next(context.Background(), 1)
	require.NoError(t, err)
	require.Len(t, heldB, 1)
	for range 40 {
		require.NoError(t, a.Append(data()))
	}
	aBefore, _ := streamDropped(a, reasonBudget)
	bBefore, _ := streamDropped(b, reasonBudget)
	require.NoError(t, q.Close())
	aAfter, _ := streamDropped(a, reasonBudget)
	bAfter, _ := streamDropped(b, reasonBudget)
	require.Equal(t, aBefore+2, aAfter, "tenant a's held blocks")
	require.Equal(t, bBefore+1, bAfter, "tenant b's held block")
}
