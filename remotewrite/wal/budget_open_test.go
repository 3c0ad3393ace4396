package wal

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBudgetAtOpen: the disk budget holds from Open on, not only from the
// first Append: a clean Close pads the active segment's last page (up to
// 32 KiB more on disk), and a restart may come with a smaller
// wal.max_size; the oldest segments go at Open, their unsent blocks
// counted dropped (disk_budget), for a plain queue and for a tenant's
// stream (counted on its reader's metrics once it attaches).
func TestBudgetAtOpen(t *testing.T) {
	for _, tenants := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tenants"}[tenants], func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ep")
			cfg := Config{Dir: dir, SegmentSize: 32 << 10, MaxSize: 256 << 10, Tenants: tenants}
			q := openTest(t, cfg)
			appended := 0
			for range 30 {
				bs := []Block{{Tenant: map[bool]string{true: "a"}[tenants], Samples: 2, Data: make([]byte, 7000)}}
				require.NoError(t, q.AppendGroups([][]Block{bs}))
				appended += 2
			}
			require.NoError(t, q.Close())

			for _, maxSize := range []int64{256 << 10, 96 << 10} { // the same budget after the padding, then a smaller one
				cfg.MaxSize = maxSize
				q = openTest(t, cfg)
				require.LessOrEqual(t, q.Stats().Bytes, maxSize, "max_size %d right after Open", maxSize)
				var pending, dropped int
				if tenants {
					st, err := q.Stream("a", 0, nil)
					require.NoError(t, err)
					_, dropped = streamDropped(st, reasonBudget)
					pending = st.Stats().PendingSamples
				} else {
					_, dropped = droppedOf(q)
					pending = q.Stats().PendingSamples
				}
				require.Equal(t, appended, pending+dropped, "max_size %d: appended = pending + dropped", maxSize)
				appended = pending // the next open starts from what is left
				require.NoError(t, q.Close())
			}
		})
	}
}

func droppedOf(q *Queue) (blocks, samples int) { return dropped(q, reasonBudget) }
