package wal

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// FuzzOpenCorrupt writes a few blocks over several segments, flips
// fuzzer-chosen bytes in the segment files (and may cut the last one short),
// and checks that Open never fails and Next returns only intact blocks, in
// increasing seq order, with exact accounting.
func FuzzOpenCorrupt(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0x10, 0xff})                // first header byte of the first segment
	f.Add([]byte{0, 0x90, 0x00, 0x01})             // middle of the second segment
	f.Add([]byte{0, 0x00, 0x40, 0x80, 1, 0, 0, 1}) // a payload byte, and a header elsewhere
	f.Add([]byte{0xff, 0xff, 0x55, 0x00})          // truncate the last segment
	f.Fuzz(func(t *testing.T, ops []byte) { runFuzzBody(t, ops, false) })
}

// FuzzOpenCorruptTenants is FuzzOpenCorrupt for a queue shared by two
// tenants (record version 4) whose process is killed after a partial ack:
// the position is in the fast ack file only, which comes first in the
// bytes the fuzzer flips (a damaged record is ignored: the block is
// resent). Each stream gets only its own intact blocks, in order, and per
// stream got + lost = pending at Open.
func FuzzOpenCorruptTenants(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0x08, 0x01}) // the fast record's gen
	f.Add([]byte{0, 0, 0x1c, 0x80}) // its ack state
	f.Add([]byte{0, 0, 0x10, 0xff})
	f.Add([]byte{0, 0x90, 0x00, 0x01})
	f.Add([]byte{0, 0x00, 0x2e, 0x04}) // a tenant length byte
	f.Add([]byte{0xff, 0xff, 0x55, 0x00})
	f.Fuzz(func(t *testing.T, ops []byte) { runFuzzBody(t, ops, true) })
}

// fuzzTenant is the tenant of block seq in FuzzOpenCorruptTenants ("" in
// FuzzOpenCorrupt): odd seqs are a's, even ones b's.
func fuzzTenant(tenants bool, seq uint64) string {
	switch {
	case !tenants:
		return ""
	case seq%2 == 1:
		return "a"
	default:
		return "b"
	}
}

// runFuzzBody writes a queue, damages its files as ops say (offsets to
// flip or truncate), reopens it and checks the accounting identity and
// the order of what is read back. Long because those are the three steps
// of one fuzz run, sharing their state.
func runFuzzBody(t *testing.T, ops []byte, tenants bool) {
	{
		const (
			blocks = uint64(14)
			size   = 7000
		)
		dir := filepath.Join(t.TempDir(), "ep")
		cfg := Config{Dir: dir, SegmentSize: 32 << 10, MemoryBytes: 1, Fsync: FsyncSegment, Tenants: tenants}
		if tenants {
			cfg.AckInterval = time.Hour // Ack writes the fast ack file only
		}
		q, err := Open(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(0); i < blocks; i += 2 {
			bs := []Block{{Samples: 1, Data: payload(i+1, size)}, {Samples: 2, Data: payload(i+2, size)}}
			groups := [][]Block{bs}
			if tenants {
				bs[0].Tenant, bs[1].Tenant = "a", "b"
				groups = [][]Block{bs[:1], bs[1:]}
			}
			if err := q.AppendGroups(groups); err != nil {
				t.Fatal(err)
			}
		}
		var files [][]byte
		var names []string
		total := 0
		var paths []string
		if tenants { // b acknowledges its first block, then the process is killed
			st, err := q.Stream("b", 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if bs, err := st.Next(context.Background(), 1); err != nil || st.Ack(bs[0].Seq) != nil {
				t.Fatal(err)
			}
			killed := filepath.Join(t.TempDir(), "killed")
			copyLive(t, dir, killed)
			dir, cfg.Dir = killed, killed
			paths = append([]string{filepath.Join(dir, disk.FastAckFileName)}, segmentFiles(t, dir)...)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if !tenants {
			paths = segmentFiles(t, dir)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			files, names = append(files, b), append(names, p)
			total += len(b)
		}
		// Each op: 3 bytes of offset into the concatenated segments, 1 xor
		// byte; an xor of 0 at offset 0xffff.. truncates the last file.
		for len(ops) >= 4 {
			off := int(ops[0])<<16 | int(ops[1])<<8 | int(ops[2])
			x := ops[3]
			ops = ops[4:]
			if off >= 0xff0000 && x == 0 {
				last := len(files) - 1
				files[last] = files[last][:len(files[last])*(off&0xff)/256]
				continue
			}
			off %= total
			for i := range files {
				if off < len(files[i]) {
					files[i][off] ^= x
					break
				}
				off -= len(files[i])
			}
		}
		for i, p := range names {
			if err := os.WriteFile(p, files[i], 0o640); err != nil {
				t.Fatal(err)
			}
		}

		q, err = Open(cfg, nil, nil)
		if err != nil {
			t.Fatalf("Open refused corrupt data: %v", err)
		}
		defer q.Close()
		readers := []*Stream{q.def}
		if tenants {
			readers = nil
			for _, tn := range []string{"a", "b"} {
				st, err := q.Stream(tn, 0, nil)
				if err != nil {
					t.Fatal(err)
				}
				readers = append(readers, st)
			}
		}
		for _, r := range readers {
			checkFuzzStream(t, r, blocks, size, tenants)
		}
		// The queue stays usable.
		if err := q.AppendGroups([][]Block{{{Samples: 1, Tenant: fuzzTenant(tenants, 1), Data: []byte("after")}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkFuzzStream drains st and checks order, groups, payloads and that
// got + lost = pending at Open.
func checkFuzzStream(t *testing.T, st *Stream, blocks uint64, size int, tenants bool) {
	pending := st.Stats().PendingBlocks
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var last uint64
	got := 0
	for {
		bs, err := st.Next(ctx, 3)
		if err != nil {
			break
		}
		for _, b := range bs {
			if b.Seq <= last || b.Seq > blocks || fuzzTenant(tenants, b.Seq) != st.tenant {
				t.Fatalf("stream %q: seq %d after %d", st.tenant, b.Seq, last)
			}
			last = b.Seq
			group := b.Seq - (b.Seq+1)%2
			if tenants {
				group = b.Seq
			}
			if b.Group != bs[0].Group || b.Group != group {
				t.Fatalf("block %d: group %d", b.Seq, b.Group)
			}
			if string(b.Data) != string(payload(b.Seq, size)) || b.Samples != int(2-b.Seq%2) {
				t.Fatalf("block %d is not intact", b.Seq)
			}
			got++
		}
	}
	lost := int(testutil.ToFloat64(st.m.droppedBlocks.WithLabelValues(reasonCorrupt)))
	if got+lost != pending {
		t.Fatalf("stream %q: pending %d at Open, got %d, lost %d", st.tenant, pending, got, lost)
	}
}
