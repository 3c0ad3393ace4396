package wal

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestAppendCountedAfterWrite: a scrape of the queue's metrics while an
// Append is writing (here: during its fsync) reads
// appended = pending + dropped, the blocks being written in neither: they
// are counted appended once the write's outcome is known, with the pending
// gauge (written) or the write_error drop (failed). Counted before the
// write, as they were, such a scrape read them appended but neither
// pending nor dropped (an e2e test reading appended = pending while
// rounds ran saw 2 of 600 reads off on a quiet host).
func TestAppendCountedAfterWrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		syncErr error
	}{
		{"written", nil},
		{"fsync fails", syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTest(t, Config{Dir: filepath.Join(t.TempDir(), "ep"), Fsync: FsyncAppend})
			m := q.def.m
			books := func() (appended, pending, dropped float64) {
				return testutil.ToFloat64(m.samplesAppended), testutil.ToFloat64(m.pendingSamples),
					testutil.ToFloat64(m.droppedSamples.WithLabelValues(reasonWriteError))
			}
			appendN(t, q, 3, 100) // something on the books before
			a0, p0, d0 := books()
			require.Positive(t, a0)
			require.Equal(t, a0, p0+d0)

			var during [3]float64
			calls := 0
			q.w = &watchedLog{segmentLog: q.w, sync: func(sync func() error) error {
				calls++
				during[0], during[1], during[2] = books()
				if err := sync(); err != nil {
					return err
				}
				return tc.syncErr
			}}

			next := q.Stats().LastSeq + 1
			bs := []Block{{Samples: 5, MaxTimestamp: int64(next) * 1000, Data: payload(next, 100)},
				{Samples: 7, MaxTimestamp: int64(next+1) * 1000, Data: payload(next+1, 100)}}
			err := q.Append(bs)
			require.Equal(t, 1, calls, "one fsync per Append")
			require.Equal(t, [3]float64{a0, p0, d0}, during, "during the write: the books as before it (appended, pending, write_error)")

			a1, p1, _ := books()
			require.Equal(t, a0+12, a1, "counted appended once written or failed")
			if tc.syncErr == nil {
				require.NoError(t, err)
				require.Equal(t, p0+12, p1)
				return
			}
			require.ErrorIs(t, err, tc.syncErr)
			require.Equal(t, p0, p1, "a failed write is not pending")
		})
	}
}

// watchedLog runs sync around the segment log's Sync (given as an argument).
type watchedLog struct {
	segmentLog
	sync func(sync func() error) error
}

func (w *watchedLog) Sync() error { return w.sync(w.segmentLog.Sync) }
