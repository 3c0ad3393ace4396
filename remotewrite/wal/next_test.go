package wal

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestNextBlocksUntilAppend(t *testing.T) {
	q := openTest(t, Config{Dir: filepath.Join(t.TempDir(), "ep")})
	type result struct {
		bs  []Block
		err error
	}
	res := make(chan result, 1)
	go func() {
		bs, err := q.Next(context.Background(), 10)
		res <- result{bs, err}
	}()
	select {
	case r := <-res:
		t.Fatalf("Next returned before any Append: %+v", r)
	default:
	}
	appendN(t, q, 2, 100)
	r := <-res
	require.NoError(t, r.err)
	require.Equal(t, []uint64{1, 2}, seqs(r.bs))
}

func TestNextHonoursContext(t *testing.T) {
	q := openTest(t, Config{Dir: filepath.Join(t.TempDir(), "ep")})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := q.Next(ctx, 1)
		errc <- err
	}()
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
}

func TestNextAfterClose(t *testing.T) {
	q := openTest(t, Config{Dir: filepath.Join(t.TempDir(), "ep")})
	errc := make(chan error, 1)
	go func() {
		_, err := q.Next(context.Background(), 1)
		errc <- err
	}()
	require.NoError(t, q.Close())
	require.ErrorIs(t, <-errc, ErrClosed, "a blocked Next is released by Close")
	_, err := q.Next(context.Background(), 1)
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, q.Append([]Block{{Data: []byte("x")}}), ErrClosed)
	require.ErrorIs(t, q.Ack(1), ErrClosed)
}

func TestAppendCopiesData(t *testing.T) {
	q := openTest(t, Config{Dir: filepath.Join(t.TempDir(), "ep")})
	data := []byte("original")
	require.NoError(t, q.Append([]Block{{Data: data}}))
	copy(data, "mutated!")
	bs := drain(t, q, 1)
	require.Equal(t, "original", string(bs[0].Data))
	require.Error(t, q.Append([]Block{{Samples: -1}}))
	require.Equal(t, uint64(1), q.Stats().LastSeq, "a refused Append assigns nothing")
}

// failingLog injects write errors in front of the real wlog writer: the
// seam where a full disk would surface.
type failingLog struct {
	segmentLog
	failLog, failCut int
	failAfterWrite   int // write the records, then report an error (fsync failure)
}

var errNoSpace = syscall.ENOSPC

func (f *failingLog) Log(recs ...[]byte) error {
	if f.failLog > 0 {
		f.failLog--
		return errNoSpace
	}
	if f.failAfterWrite > 0 {
		f.failAfterWrite--
		if err := f.segmentLog.Log(recs...); err != nil {
			return err
		}
		return errNoSpace
	}
	return f.segmentLog.Log(recs...)
}

func (f *failingLog) NextSegmentSync() (int, error) {
	if f.failCut > 0 {
		f.failCut--
		return 0, errNoSpace
	}
	return f.segmentLog.NextSegmentSync()
}

// TestWriteError fails writes (before wlog, or after it wrote: a failed
// fsync), cuts and the truncation that discards a failed write's records,
// and proves that the failed blocks are never handed out, counted dropped
// once they are gone from disk, and not found again by the next Open:
// appended = acked + dropped + pending, across the restart.
func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		name             string
		failLog, failCut int
		failAfterWrite   int
		failTruncate     int
		failedAppends    int
		countedAtFailure int // failed blocks counted dropped before the next good Append
	}{
		{"written_but_failed", 0, 0, 1, 0, 1, 2},
		// The failing Append tries the cut once itself.
		{"written_but_failed_and_cut_fails", 0, 3, 1, 0, 3, 4},
		{"written_but_failed_and_truncate_fails", 0, 0, 1, 1, 1, 0},
		{"written_but_failed_and_truncate_fails_twice", 0, 0, 1, 2, 1, 0},
		{"one_failed_write", 1, 0, 0, 0, 1, 2},
		{"cut_also_fails_once", 1, 2, 0, 0, 2, 2},
		{"three_failed_writes", 3, 0, 0, 0, 3, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failTruncate := tc.failTruncate
			truncate := truncateFile
			truncateFile = func(path string, size int64) error {
				if failTruncate > 0 {
					failTruncate--
					return syscall.EIO
				}
				return truncate(path, size)
			}
			t.Cleanup(func() { truncateFile = truncate })
			cfg := Config{Dir: filepath.Join(t.TempDir(), "ep")}
			q, err := Open(cfg, nil, prometheus.NewRegistry())
			require.NoError(t, err)
			appended := 0
			for _, b := range appendN(t, q, 2, 500) {
				appended += b.Samples
			}
			q.mu.Lock()
			q.w = &failingLog{segmentLog: q.w, failLog: tc.failLog, failCut: tc.failCut, failAfterWrite: tc.failAfterWrite}
			q.mu.Unlock()

			failedSamples := 0
			for range tc.failedAppends {
				bs := []Block{{Samples: 5, Data: []byte("lost")}, {Samples: 6, Data: []byte("lost")}}
				err := q.Append(bs)
				require.True(t, errors.Is(err, syscall.ENOSPC), "got %v", err)
				appended += 11
				failedSamples += 11
			}
			blocks, _ := dropped(q, reasonWriteError)
			require.Equal(t, tc.countedAtFailure, blocks, "only records gone from disk are counted")

			after := appendN(t, q, 2, 500) // the queue stays usable
			for _, b := range after {
				appended += b.Samples
			}
			got := drain(t, q, 10)
			require.Equal(t, []uint64{1, 2, after[0].Seq, after[1].Seq}, seqs(got), "failed blocks never handed out")
			requireIntact(t, got, 500)
			// Closed without acking, so that a restart replays every block
			// still on disk.
			require.NoError(t, q.Close())
			blocks, samples := dropped(q, reasonWriteError)
			require.Equal(t, 2*tc.failedAppends, blocks, "every failed block counted by Close")
			require.Equal(t, failedSamples, samples)

			// The next Open must not find (and send) what was counted dropped.
			q2 := openTest(t, cfg)
			replayed := drain(t, q2, 10)
			require.Equal(t, seqs(got), seqs(replayed), "failed blocks found again after a restart")
			requireIntact(t, replayed, 500)
			sent := 0
			for _, b := range replayed {
				sent += b.Samples
			}
			require.NoError(t, q2.Ack(replayed[len(replayed)-1].Seq))
			require.Equal(t, appended, sent+samples)
		})
	}
}

// TestWriteErrorCrash: the records of a failed write that could not be
// discarded before a crash are found by the next Open and sent; they were
// never counted dropped, so nothing is counted twice.
func TestWriteErrorCrash(t *testing.T) {
	truncate := truncateFile
	truncateFile = func(string, int64) error { return syscall.EIO }
	t.Cleanup(func() { truncateFile = truncate })
	dir := filepath.Join(t.TempDir(), "ep")
	q := openTest(t, Config{Dir: dir})
	appendN(t, q, 2, 500)
	q.mu.Lock()
	q.w = &failingLog{segmentLog: q.w, failAfterWrite: 1}
	q.mu.Unlock()
	require.Error(t, q.Append([]Block{{Samples: 5, Data: []byte("kept")}}))
	appendN(t, q, 1, 500)
	blocks, _ := dropped(q, reasonWriteError)
	require.Zero(t, blocks, "not counted while on disk")
	crash := filepath.Join(t.TempDir(), "crash")
	copyDir(t, dir, crash)

	truncateFile = truncate
	q2 := openTest(t, Config{Dir: crash})
	got := drain(t, q2, 10)
	require.Equal(t, []uint64{1, 2, 3, 4}, seqs(got), "the failed write's block is sent after the crash")
	require.Equal(t, []byte("kept"), got[2].Data)
}

// TestWriteErrorSpanningSegments fails a write after wlog wrote it across
// segments it cut by itself: every segment the failed write reached is
// discarded, and a restart finds none of its blocks.
func TestWriteErrorSpanningSegments(t *testing.T) {
	cfg := Config{Dir: filepath.Join(t.TempDir(), "ep"), SegmentSize: 32 << 10}
	q, err := Open(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	before := appendN(t, q, 2, 500)
	q.mu.Lock()
	q.w = &failingLog{segmentLog: q.w, failAfterWrite: 1}
	q.mu.Unlock()
	bs := make([]Block, 12)
	for i := range bs {
		bs[i] = Block{Samples: 1, Data: payload(uint64(100+i), 8000)} // about 3 segments
	}
	segsBefore := len(segmentFiles(t, cfg.Dir))
	require.Error(t, q.Append(bs))
	require.Greater(t, len(segmentFiles(t, cfg.Dir)), segsBefore+2, "wlog cut during the failed write")
	after := appendN(t, q, 2, 500)
	require.NoError(t, q.Close())
	blocks, samples := dropped(q, reasonWriteError)
	require.Equal(t, 12, blocks)
	require.Equal(t, 12, samples)

	q2 := openTest(t, cfg)
	got := drain(t, q2, 100)
	require.Equal(t, seqs(append(before, after...)), seqs(got))
	requireIntact(t, got, 500)
}

// TestWriteErrorTenants: a failed AppendGroups over two tenants counts
// each tenant's blocks on its own stream, once they are gone from disk,
// and a restart hands neither tenant its failed blocks.
func TestWriteErrorTenants(t *testing.T) {
	cfg := Config{Dir: filepath.Join(t.TempDir(), "ep"), Tenants: true}
	q, err := Open(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	a, err := q.Stream("a", 0, nil)
	require.NoError(t, err)
	b, err := q.Stream("b", 0, nil)
	require.NoError(t, err)
	groups := func(na, nb int) [][]Block {
		var ga, gb []Block
		for range na {
			ga = append(ga, Block{Tenant: "a", Samples: 2, Data: []byte("a")})
		}
		for range nb {
			gb = append(gb, Block{Tenant: "b", Samples: 3, Data: []byte("b")})
		}
		return [][]Block{ga, gb}
	}
	require.NoError(t, q.AppendGroups(groups(1, 1)))
	q.mu.Lock()
	q.w = &failingLog{segmentLog: q.w, failAfterWrite: 1}
	q.mu.Unlock()
	require.ErrorIs(t, q.AppendGroups(groups(2, 3)), syscall.ENOSPC)
	require.NoError(t, q.AppendGroups(groups(1, 1)))
	require.NoError(t, q.Close())
	da, sa := streamDropped(a, reasonWriteError)
	db, sb := streamDropped(b, reasonWriteError)
	require.Equal(t, []int{2, 4, 3, 9}, []int{da, sa, db, sb})

	q2 := openTest(t, cfg)
	for _, tn := range []string{"a", "b"} {
		st, err := q2.Stream(tn, 0, nil)
		require.NoError(t, err)
		require.Len(t, drainStream(t, st, 10), 2, "tenant %s: only the blocks of the good writes", tn)
	}
}
