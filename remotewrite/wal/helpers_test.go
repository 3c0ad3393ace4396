package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// openTest opens a queue in dir with a fresh registry.
func openTest(t testing.TB, cfg Config) *Queue {
	t.Helper()
	q, err := Open(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	return q
}

// payload is the deterministic content of the block with seq s in a queue
// that started empty, so readers can check integrity without bookkeeping.
func payload(seq uint64, size int) []byte {
	b := make([]byte, size)
	for i := 0; i+8 <= size; i += 8 {
		binary.BigEndian.PutUint64(b[i:], seq*0x9E3779B97F4A7C15+uint64(i))
	}
	return b
}

// appendN appends one group of n blocks whose seqs will start at next.
func appendN(t testing.TB, q *Queue, n, size int) []Block {
	t.Helper()
	next := q.Stats().LastSeq + 1
	bs := make([]Block, n)
	for i := range bs {
		seq := next + uint64(i)
		bs[i] = Block{Samples: int(seq%7) + 1, MaxTimestamp: int64(seq) * 1000, Data: payload(seq, size)}
	}
	require.NoError(t, q.Append(bs))
	return bs
}

// drain returns every block Next hands out without waiting.
func drain(t testing.TB, q *Queue, max int) []Block {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out []Block
	for {
		bs, err := q.Next(ctx, max)
		if errors.Is(err, context.Canceled) {
			return out
		}
		require.NoError(t, err)
		require.NotEmpty(t, bs)
		out = append(out, bs...)
	}
}

// requireIntact checks order, group homogeneity is the caller's business.
func requireIntact(t testing.TB, bs []Block, size int) {
	t.Helper()
	var last uint64
	for _, b := range bs {
		require.Greater(t, b.Seq, last, "seq order")
		last = b.Seq
		require.Equal(t, payload(b.Seq, size), b.Data, "payload of %d", b.Seq)
		require.Equal(t, int(b.Seq%7)+1, b.Samples)
		require.Equal(t, int64(b.Seq)*1000, b.MaxTimestamp)
	}
}

func seqs(bs []Block) []uint64 {
	out := make([]uint64, len(bs))
	for i, b := range bs {
		out[i] = b.Seq
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func dropped(q *Queue, reason string) (blocks, samples int) {
	return int(testutil.ToFloat64(q.def.m.droppedBlocks.WithLabelValues(reason))),
		int(testutil.ToFloat64(q.def.m.droppedSamples.WithLabelValues(reason)))
}

func corruptions(q *Queue) int { return int(testutil.ToFloat64(q.m.corruptions)) }

// segmentFiles lists the segment paths in dir, oldest first.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	idx, err := disk.ListSegments(dir)
	require.NoError(t, err)
	var out []string
	for _, k := range idx {
		out = append(out, wlog.SegmentName(dir, k))
	}
	return out
}

// recordEnds returns the offset after each record of a segment file.
func recordEnds(t testing.TB, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	lr := wlog.NewLiveReader(nil, wlog.NewLiveReaderMetrics(nil), f)
	var ends []int64
	for lr.Next() {
		ends = append(ends, lr.Offset())
	}
	require.ErrorIs(t, lr.Err(), io.EOF)
	return ends
}

// copyDir copies the queue files except the lock, like the disk after a
// process crash.
func copyDir(t testing.TB, src, dst string) { copyFiles(t, src, dst, false) }

// copyFiles copies the files of src except the lock into dst; with live
// (the queue still open) a file renamed away between the listing and its
// read is skipped, else that fails the test.
func copyFiles(t testing.TB, src, dst string, live bool) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dst, 0o750))
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() == "lock" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if live && errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o640))
	}
}
