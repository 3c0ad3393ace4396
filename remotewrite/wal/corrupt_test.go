package wal

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// fill writes n single-block groups of size bytes and closes the queue.
func fill(t *testing.T, cfg Config, n, size int) {
	t.Helper()
	q, err := Open(cfg, nil, nil)
	require.NoError(t, err)
	for range n {
		appendN(t, q, 1, size)
	}
	require.NoError(t, q.Close())
}

func TestTornTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	cfg := Config{Dir: dir, SegmentSize: 64 << 10}
	fill(t, cfg, 5, 3000) // one segment
	segs := segmentFiles(t, dir)
	last := segs[len(segs)-1]
	if fi, _ := os.Stat(last); fi.Size() == 0 {
		last = segs[len(segs)-2]
	}
	ends := recordEnds(t, last)
	require.Len(t, ends, 5)
	// Cut the last record in half, as a crash mid-write would.
	require.NoError(t, os.Truncate(last, ends[3]+(ends[4]-ends[3])/2))

	q := openTest(t, cfg)
	require.Equal(t, 1, corruptions(q))
	got := drain(t, q, 10)
	require.Equal(t, seqRange(1, 4), seqs(got), "records before the tear kept")
	requireIntact(t, got, 3000)
	more := appendN(t, q, 2, 3000)
	require.Equal(t, uint64(5), more[0].Seq, "seq 5 never reached the disk, so it is reusable")
	require.Equal(t, []uint64{5, 6}, seqs(drain(t, q, 10)), "appends continue")
}

func TestFlippedBytesInMiddleSegment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	cfg := Config{Dir: dir, SegmentSize: 32 << 10, MemoryBytes: 1}
	fill(t, cfg, 12, 9000) // three blocks per segment
	segs := segmentFiles(t, dir)
	require.GreaterOrEqual(t, len(segs), 4)
	// In the second segment, corrupt the second record: its first block survives.
	mid := segs[1]
	ends := recordEnds(t, mid)
	require.Len(t, ends, 3)
	b, err := os.ReadFile(mid)
	require.NoError(t, err)
	b[ends[0]+100] ^= 0xff
	b[ends[0]+101] ^= 0x0f
	require.NoError(t, os.WriteFile(mid, b, 0o640))

	reg := prometheus.NewRegistry()
	q, err := Open(cfg, nil, reg)
	require.NoError(t, err)
	defer q.Close()
	require.Equal(t, 1, corruptions(q))
	require.Equal(t, 10, q.Stats().PendingBlocks)
	got := drain(t, q, 2)
	want := append([]uint64{1, 2, 3, 4}, seqRange(7, 12)...)
	require.Equal(t, want, seqs(got), "rest of segment 1 skipped, later segments read")
	requireIntact(t, got, 9000)
}

func TestUnknownRecordVersionSkipped(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	w, err := wlog.NewSize(nil, nil, dir, 32<<10, compression.None)
	require.NoError(t, err)
	good := func(seq uint64) []byte {
		return disk.EncodeRecord(&Block{Seq: seq, Group: seq, Samples: int(seq%7) + 1, MaxTimestamp: int64(seq) * 1000, Data: payload(seq, 64)})
	}
	future := good(2)
	future[0] = disk.RecordVersionTenant + 1
	require.NoError(t, w.Log(good(1), future, good(3)))
	require.NoError(t, w.Close())

	q := openTest(t, Config{Dir: dir})
	require.Equal(t, 1, corruptions(q))
	got := drain(t, q, 10)
	require.Equal(t, []uint64{1, 3}, seqs(got))
	requireIntact(t, got, 64)
}

func TestAckFileOnOpen(t *testing.T) {
	for _, tc := range []struct {
		name       string
		content    []byte
		wantErr    string
		wantSeqs   []uint64
		corruption int
	}{
		{"valid", disk.EncodeAck(disk.AckState{Seq: 3}), "", seqRange(4, 6), 0},
		{"bad_crc", func() []byte { b := disk.EncodeAck(disk.AckState{Seq: 3}); b[7] ^= 1; return b }(), "", seqRange(1, 6), 1},
		{"truncated", disk.EncodeAck(disk.AckState{Seq: 3})[:10], "", seqRange(1, 6), 1},
		{"garbage", []byte("hello"), "", seqRange(1, 6), 1},
		{"empty", nil, "", seqRange(1, 6), 1},
		{"unknown_version", func() []byte {
			b := disk.EncodeAck(disk.AckState{Seq: 3})
			b[4] = 9
			return resum(b)
		}(), "unsupported ack file version 9", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ep")
			cfg := Config{Dir: dir}
			fill(t, cfg, 6, 100)
			require.NoError(t, os.WriteFile(filepath.Join(dir, disk.AckFileName), tc.content, 0o640))
			q, err := Open(cfg, nil, nil)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				_, err = Open(cfg, nil, nil)
				require.Error(t, err, "still refused, and the failed Open released the lock")
				require.NotContains(t, err.Error(), "lock")
				return
			}
			require.NoError(t, err)
			defer q.Close()
			require.Equal(t, tc.corruption, corruptions(q))
			require.Equal(t, tc.wantSeqs, seqs(drain(t, q, 10)))
		})
	}
}

func TestSegmentGapRenumbered(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	cfg := Config{Dir: dir, SegmentSize: 32 << 10}
	fill(t, cfg, 9, 9000)
	segs := segmentFiles(t, dir)
	require.GreaterOrEqual(t, len(segs), 3)
	require.NoError(t, os.Remove(segs[1]))
	q := openTest(t, cfg)
	got := drain(t, q, 10)
	require.NotEmpty(t, got)
	requireIntact(t, got, 9000)
	require.Equal(t, uint64(1), got[0].Seq)
	require.Equal(t, uint64(9), got[len(got)-1].Seq)
}

// resum recomputes an ack file's trailing CRC (disk's ack file format), to
// build an intact file of another version.
func resum(b []byte) []byte {
	binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli)))
	return b
}
