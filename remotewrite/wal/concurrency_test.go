package wal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

// TestConcurrentWriterReader runs Append, Next and Ack in separate
// goroutines under a tight budget (run with -race) and checks order and the
// accounting identity at the end.
func TestConcurrentWriterReader(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q := openTest(t, Config{Dir: dir, MaxSize: 128 << 10, SegmentSize: 32 << 10, MemoryBytes: 20 << 10, Fsync: FsyncSegment})
	const appends = 400
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	appendedSamples := 0
	writerDone := make(chan struct{})
	var g errgroup.Group
	g.Go(func() error {
		defer close(writerDone)
		for i := range appends {
			bs := make([]Block, 1+i%3)
			for j := range bs {
				bs[j] = Block{Samples: 1 + j, Data: make([]byte, 500+i*7%4000)}
				appendedSamples += 1 + j
			}
			if err := q.Append(bs); err != nil {
				return err
			}
		}
		return nil
	})
	ackedSamples := 0
	g.Go(func() error {
		var last uint64
		for {
			bs, err := q.Next(ctx, 3)
			if err != nil {
				return nil // cancelled once the writer is done and the queue drained
			}
			for _, b := range bs {
				if b.Seq <= last || b.Group != bs[0].Group {
					return fmt.Errorf("block %d (group %d) after %d in a batch of group %d", b.Seq, b.Group, last, bs[0].Group)
				}
				last = b.Seq
				ackedSamples += b.Samples
			}
			if err := q.Ack(last); err != nil {
				return err
			}
		}
	})
	<-writerDone
	// Everything is acked or dropped: stop the reader.
	require.Eventually(t, func() bool { return q.Stats().PendingBlocks == 0 }, 30*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, g.Wait())
	_, dropSamples := dropped(q, reasonBudget)
	require.Equal(t, appendedSamples, ackedSamples+dropSamples)
	require.Equal(t, 0, q.Stats().PendingSamples)
}

// TestCorruptionFoundAtRuntime corrupts a segment after Open indexed it: the
// blocks the index expects but cannot read are dropped as "corrupt".
func TestCorruptionFoundAtRuntime(t *testing.T) {
	for _, tc := range []struct {
		name   string
		active bool
	}{
		{"closed_segment", false},
		{"active_segment", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ep")
			q := openTest(t, Config{Dir: dir, SegmentSize: 64 << 10, MemoryBytes: 1})
			for range 3 {
				appendN(t, q, 1, 9000)
			}
			if !tc.active {
				q.mu.Lock()
				require.NoError(t, q.cut())
				q.mu.Unlock()
				appendN(t, q, 1, 9000)
			}
			segs := segmentFiles(t, dir)
			victim := segs[0]
			ends := recordEnds(t, victim)
			b, err := os.ReadFile(victim)
			require.NoError(t, err)
			b[ends[0]+50] ^= 0xff // second record
			require.NoError(t, os.WriteFile(victim, b, 0o640))

			got := drain(t, q, 10)
			want := []uint64{1}
			if !tc.active {
				want = append(want, 4)
			}
			require.Equal(t, want, seqs(got))
			requireIntact(t, got, 9000)
			blocks, samples := dropped(q, reasonCorrupt)
			require.Equal(t, 2, blocks)
			require.Equal(t, 2%7+1+3%7+1, samples)
			require.Equal(t, 1, corruptions(q))
			require.Equal(t, len(want), q.Stats().PendingBlocks)

			after := appendN(t, q, 1, 9000)
			require.Equal(t, []uint64{after[0].Seq}, seqs(drain(t, q, 10)), "appends after the corruption are readable")
		})
	}
}
