package wal

import (
	"context"
	"os"
	"path/filepath"
	"testing"
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
	f.Fuzz(runFuzzBody)
}

// runFuzzBody writes a queue, damages its files as ops say (offsets to
// flip or truncate), reopens it and checks the accounting identity and
// the order of what is read back. Long because those are the three steps
// of one fuzz run, sharing their state.
func runFuzzBody(t *testing.T, ops []byte) {
	{
		const (
			blocks = 14
			size   = 7000
		)
		dir := filepath.Join(t.TempDir(), "ep")
		cfg := Config{Dir: dir, SegmentSize: 32 << 10, MemoryBytes: 1, Fsync: FsyncSegment}
		q, err := Open(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < blocks; i += 2 {
			bs := []Block{{Samples: 1, Data: payload(uint64(i+1), size)}, {Samples: 2, Data: payload(uint64(i+2), size)}}
			if err := q.Append(bs); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}

		var files [][]byte
		var names []string
		total := 0
		for _, p := range segmentFiles(t, dir) {
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
		pending := q.Stats().PendingBlocks
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var last uint64
		got := 0
		for {
			bs, err := q.Next(ctx, 3)
			if err != nil {
				break
			}
			for _, b := range bs {
				if b.Seq <= last || b.Seq > blocks {
					t.Fatalf("seq %d after %d", b.Seq, last)
				}
				last = b.Seq
				if b.Group != bs[0].Group || b.Group != b.Seq-(b.Seq+1)%2 {
					t.Fatalf("block %d: group %d", b.Seq, b.Group)
				}
				if string(b.Data) != string(payload(b.Seq, size)) || b.Samples != int(2-b.Seq%2) {
					t.Fatalf("block %d is not intact", b.Seq)
				}
				got++
			}
		}
		lost, _ := dropped(q, reasonCorrupt)
		if got+lost != pending {
			t.Fatalf("pending %d at Open, got %d, lost %d", pending, got, lost)
		}
		// The queue stays usable.
		if err := q.Append([]Block{{Samples: 1, Data: []byte("after")}}); err != nil {
			t.Fatal(err)
		}
	}
}
