package remotewrite

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// groupLog is a WAL that records the blocks of every group appended.
type groupLog struct {
	blockQueue
	mu     sync.Mutex
	groups [][]int // samples per block, per group
}

func (g *groupLog) Append(blocks []wal.Block) error {
	var n []int
	for _, b := range blocks {
		n = append(n, b.Samples)
	}
	g.mu.Lock()
	g.groups = append(g.groups, n)
	g.mu.Unlock()
	return g.blockQueue.Append(blocks)
}

func (g *groupLog) written() [][]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]int(nil), g.groups...)
}

// TestStageGroups: parts staged one after the other are written in groups
// of 8192 series (a part split at the boundary), the rest by Commit; an
// Append writes what is staged with its own series as one group, Close
// what is left. Blocks hold copies: every series arrives intact, once.
func TestStageGroups(t *testing.T) {
	rc := newReceiver(t, nil).Start()
	log := &groupLog{blockQueue: newMemQueue()}
	q, reg := newTestQueue(t, config.Config{URL: rc.URL()}, log)
	ctx := context.Background()
	round := roundOf(1, 21_000)
	require.NoError(t, q.Stage(ctx, round[:5000]))
	require.NoError(t, q.Stage(ctx, round[5000:10_000]))
	require.Equal(t, [][]int{{2000, 2000, 1000, 2000, 1192}}, log.written(), "8192 series: 5000 + 3192")
	require.NoError(t, q.Stage(ctx, round[10_000:15_000]))
	require.NoError(t, q.Commit(ctx))
	require.NoError(t, q.Commit(ctx), "nothing staged")
	require.Equal(t, [][]int{{2000, 2000, 1000, 2000, 1192}, {1808, 2000, 2000, 1000}}, log.written(), "the rest, at Commit")

	require.NoError(t, q.Stage(ctx, round[15_000:16_000]))
	require.NoError(t, q.Append(ctx, round[16_000:20_000]))
	require.Equal(t, []int{1000, 2000, 2000}, log.written()[2], "Append takes the staged part along")
	require.NoError(t, q.Stage(ctx, round[20_000:]))
	stop := runQueue(t, q)
	require.Eventually(t, func() bool {
		return gathered(t, reg, "kata_monitor_remote_write_samples_sent_total") == 20_000
	}, 20*time.Second, 5*time.Millisecond)
	require.NoError(t, stop(), "Run ends with Close, which writes the staged part")
	require.Equal(t, []int{1000}, log.written()[3])
	total := 0
	for _, g := range log.written() {
		for _, n := range g {
			total += n
		}
	}
	require.Equal(t, 21_000, total)
	stored := rc.Stored()
	require.Len(t, stored, 20_000, "the part staged before Close is written, not sent")
	for _, s := range round[:20_000] {
		require.Equal(t, s.Samples, stored[rwtest.LabelKey(s.Labels)])
	}
}
