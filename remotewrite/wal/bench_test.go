package wal

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func BenchmarkAppend(b *testing.B) {
	for _, policy := range []FsyncPolicy{FsyncAppend, FsyncSegment} {
		b.Run(string(policy), func(b *testing.B) {
			q, err := Open(Config{Dir: filepath.Join(b.TempDir(), "ep"), MaxSize: 256 << 20, Fsync: policy}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			data := payload(1, 64<<10)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := q.Append([]Block{{Samples: 1000, Data: data}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReplay measures Open (index scan) plus reading every block back
// from disk, as after a restart with a backlog.
func BenchmarkReplay(b *testing.B) {
	const blocks, size = 512, 64 << 10
	dir := filepath.Join(b.TempDir(), "ep")
	cfg := Config{Dir: dir, SegmentSize: 4 << 20, MemoryBytes: 1, Fsync: FsyncSegment}
	q, err := Open(cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	data := payload(1, size)
	for range blocks {
		if err := q.Append([]Block{{Samples: 1000, Data: data}}); err != nil {
			b.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.SetBytes(blocks * size)
	b.ReportAllocs()
	for b.Loop() {
		q, err := Open(cfg, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			bs, err := q.Next(ctx, 64)
			if err != nil {
				break
			}
			n += len(bs)
		}
		if n != blocks {
			b.Fatalf("replayed %d blocks, want %d", n, blocks)
		}
		if err := q.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFollow is a reader caught up with the writer: each op appends
// a group of 8 blocks of 32 KiB (segment fsync policy) and reads it back,
// without the in-memory tail (the default: from the segment, through the
// page cache) and with one.
func BenchmarkFollow(b *testing.B) {
	for _, tc := range []struct {
		name   string
		memory int64
	}{{"no_tail", 0}, {"tail_8MiB", 8 << 20}} {
		b.Run(tc.name, func(b *testing.B) {
			q, err := Open(Config{Dir: filepath.Join(b.TempDir(), "ep"), MaxSize: 64 << 20, MemoryBytes: tc.memory, Fsync: FsyncSegment}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			data := payload(1, 32<<10)
			blocks := make([]Block, 8)
			b.SetBytes(int64(len(blocks) * len(data)))
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				for i := range blocks {
					blocks[i] = Block{Samples: 1000, Data: data}
				}
				if err := q.Append(blocks); err != nil {
					b.Fatal(err)
				}
				for n := 0; n < len(blocks); {
					bs, err := q.Next(ctx, len(blocks))
					if err != nil {
						b.Fatal(err)
					}
					n += len(bs)
					if err := q.Ack(bs[len(bs)-1].Seq); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkTenantsAck measures one tenant's Ack under AckInterval (the
// fast ack file's write of every tenant's position) with 10 and 200
// tenants at distinct positions, the timer an hour away. Each Ack writes
// every tenant's position; the tenant set stays the same, so the writer
// patches its last record rather than encoding it again.
func BenchmarkTenantsAck(b *testing.B) {
	for _, n := range []int{10, 200} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			tenants := make([]string, n)
			for i := range tenants {
				tenants[i] = fmt.Sprintf("namespace-%03d", i)
			}
			q, sts := openTenants(b, Config{Dir: filepath.Join(b.TempDir(), "ep"), AckInterval: time.Hour, Fsync: FsyncSegment}, tenants...)
			defer q.Close()
			// Every tenant has blocks on disk and its own position: each
			// is an entry of the file.
			appendRound(b, q, 2, 16, tenants...)
			for _, tn := range tenants[1:] {
				bs, err := sts[tn].Next(context.Background(), 1)
				if err != nil {
					b.Fatal(err)
				}
				if err := sts[tn].Ack(bs[0].Seq); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				appendRound(b, q, 1, 16, tenants[0])
				bs, err := sts[tenants[0]].Next(context.Background(), 1)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := sts[tenants[0]].Ack(bs[0].Seq); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
