package wal

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"

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

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		name             string
		failLog, failCut int
		failAfterWrite   int
		failedAppends    int
	}{
		{"written_but_failed", 0, 0, 1, 1},
		{"written_but_failed_and_cut_fails", 0, 2, 1, 3},
		{"one_failed_write", 1, 0, 0, 1},
		{"cut_also_fails_once", 1, 1, 0, 2},
		{"three_failed_writes", 3, 0, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTest(t, Config{Dir: filepath.Join(t.TempDir(), "ep")})
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
			blocks, samples := dropped(q, reasonWriteError)
			require.Equal(t, 2*tc.failedAppends, blocks)
			require.Equal(t, failedSamples, samples)

			after := appendN(t, q, 2, 500) // the queue stays usable
			for _, b := range after {
				appended += b.Samples
			}
			got := drain(t, q, 10)
			require.Equal(t, []uint64{1, 2, after[0].Seq, after[1].Seq}, seqs(got), "failed blocks never handed out")
			requireIntact(t, got, 500)
			acked := 0
			for _, b := range got {
				acked += b.Samples
			}
			require.NoError(t, q.Ack(got[len(got)-1].Seq))
			require.Equal(t, appended, acked+samples+q.Stats().PendingSamples)
		})
	}
}
