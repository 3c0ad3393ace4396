package wal

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

// TestFollowWithoutTail has readers caught up with a writer, without an
// in-memory tail (MemoryBytes 0, the default): each reads every block of
// its stream exactly once, in order and intact, from the segment being
// written (its cursor kept open while it grows), including blocks
// appended while it reads, groups bigger than the encoding chunk
// (logChunk) and segment cuts inside a group. Rows: the plain queue, and
// two tenants of a shared queue whose records interleave.
func TestFollowWithoutTail(t *testing.T) {
	const appends = 60
	size := func(i int) int { return 1000 + i*3001%20000 }       // up to ~21 KB
	groupLen := func(i int) int { return 1 + i%4 + 12*(i%10/9) } // every tenth group: 13 blocks, over logChunk
	for _, tenants := range [][]string{{""}, {"a", "b"}} {
		t.Run(fmt.Sprintf("tenants_%d", len(tenants)), func(t *testing.T) {
			cfg := Config{Dir: filepath.Join(t.TempDir(), "ep"), SegmentSize: 64 << 10, Fsync: FsyncSegment, Tenants: tenants[0] != ""}
			q := openTest(t, cfg)
			streams := map[string]*Stream{}
			for _, tn := range tenants {
				if tn == "" {
					streams[tn] = q.def
					continue
				}
				st, err := q.Stream(tn, 0, nil)
				require.NoError(t, err)
				streams[tn] = st
			}
			want := map[string][]Block{} // per tenant, in append order
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// The writer waits for each reader's first block before the
			// second append, so readers follow the active segment rather
			// than find a backlog.
			started := map[string]chan struct{}{}
			for _, tn := range tenants {
				started[tn] = make(chan struct{})
			}
			var g errgroup.Group
			g.Go(func() error {
				for i := range appends {
					groups := make([][]Block, 0, len(tenants))
					for k, tn := range tenants {
						bs := make([]Block, groupLen(i+k))
						for j := range bs {
							n := size(i + j)
							if len(bs) > 4 {
								n = 30000 // 13 blocks: 390 KB, more than logChunk
							}
							bs[j] = Block{Tenant: tn, Samples: 1 + j, Data: payload(uint64(i*100+j), n)}
						}
						groups = append(groups, bs)
					}
					if err := q.AppendGroups(groups); err != nil {
						return err
					}
					for k, tn := range tenants {
						want[tn] = append(want[tn], groups[k]...)
					}
					if i == 0 {
						for _, c := range started {
							select {
							case <-c:
							case <-ctx.Done():
								return ctx.Err()
							}
						}
					}
				}
				return nil
			})
			got := make([][]Block, len(tenants)) // per tenant, as read
			for k, tn := range tenants {
				wantN := 0
				for i := range appends {
					wantN += groupLen(i + k)
				}
				g.Go(func() error {
					st, n := streams[tn], 0
					for {
						bs, err := st.Next(ctx, 5)
						if err != nil {
							return fmt.Errorf("tenant %q after %d blocks: %w", tn, n, err)
						}
						for _, b := range bs {
							if b.Group != bs[0].Group {
								return fmt.Errorf("tenant %q: groups %d and %d in one batch", tn, bs[0].Group, b.Group)
							}
						}
						if n == 0 {
							close(started[tn])
						}
						got[k] = append(got[k], bs...)
						n += len(bs)
						if err := st.Ack(bs[len(bs)-1].Seq); err != nil {
							return err
						}
						if n >= wantN {
							return nil
						}
					}
				})
			}
			require.NoError(t, g.Wait())
			q.mu.Lock()
			require.Greater(t, q.active().index, 3, "the segment was cut several times")
			q.mu.Unlock()
			for k, tn := range tenants {
				w, r := want[tn], got[k]
				require.Equal(t, seqs(w), seqs(r), "tenant %q: every block once, in order", tn)
				for i := range w {
					require.Equal(t, w[i].Group, r[i].Group)
					require.Equal(t, w[i].Samples, r[i].Samples)
					require.Equal(t, w[i].Data, r[i].Data, "tenant %q block %d intact", tn, w[i].Seq)
				}
				require.Equal(t, 0, streams[tn].Stats().PendingBlocks)
			}
			q.mu.Lock()
			defer q.mu.Unlock()
			for _, tn := range tenants {
				require.Empty(t, streams[tn].mem, "no tail kept")
			}
		})
	}
}
