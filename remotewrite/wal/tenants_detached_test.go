package wal

import (
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestTenantsDropsWhileDetachedCounted: blocks of a tenant without a
// reader (after its reader closed, or never attached: a backlog moved in
// from the per-tenant layout, or found at start) that the budget drops
// are counted on the tenant's registered metrics once a reader attaches,
// not on a counter nobody can scrape; appended blocks too.
func TestTenantsDropsWhileDetachedCounted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first bool // the tenant had a reader before
	}{{"reader closed", true}, {"never attached", false}} {
		t.Run(tc.name, func(t *testing.T) {
			q, sts := openTenants(t, Config{Dir: filepath.Join(t.TempDir(), "ep"), MaxSize: 96 << 10, SegmentSize: 32 << 10}, "a")
			if tc.first {
				b, err := q.Stream("b", 0, nil)
				require.NoError(t, err)
				require.NoError(t, b.Close())
			}
			var appended, dropped int
			for range 12 {
				bs := appendRound(t, q, 1, 6000, "a", "b")
				appended += bs["b"][0].Samples
				got := drainStream(t, sts["a"], 10)
				require.NoError(t, sts["a"].Ack(got[len(got)-1].Seq))
			}
			reg := prometheus.NewRegistry()
			b, err := q.Stream("b", 0, reg)
			require.NoError(t, err)
			for _, bl := range drainStream(t, b, 100) {
				dropped -= bl.Samples
			}
			dropped += appended
			require.Positive(t, dropped, "the budget dropped some of b's blocks")
			_, got := streamDropped(b, reasonBudget)
			require.Equal(t, dropped, got, "b's drops while it had no reader")
			require.Equal(t, float64(appended), testutil.ToFloat64(b.m.samplesAppended), "b's samples appended while it had no reader")
		})
	}
}

// TestTenantsCloseWithHandedOutBlocksGone: a reader detached while holding
// blocks the budget deleted from disk meanwhile: the next reader cannot
// get them again, so they are counted dropped (disk_budget) on the
// tenant, not left pending forever (a pending count that never drains,
// an age of the oldest pending sample that grows without end).
func TestTenantsCloseWithHandedOutBlocksGone(t *testing.T) {
	q, sts := openTenants(t, Config{Dir: filepath.Join(t.TempDir(), "ep"), MaxSize: 96 << 10, SegmentSize: 32 << 10}, "a")
	first := appendRound(t, q, 2, 6000, "a")["a"]
	got := drainStream(t, sts["a"], 10)
	require.Len(t, got, 2)
	for range 30 { // push the handed-out blocks' segment out
		appendRound(t, q, 1, 6000, "b")
	}
	require.NoError(t, sts["a"].Close())
	a, err := q.Stream("a", 0, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Empty(t, drainStream(t, a, 10))
	blocks, samples := streamDropped(a, reasonBudget)
	require.Equal(t, 2, blocks)
	require.Equal(t, sumSamples(first), samples)
	require.Zero(t, a.Stats().PendingBlocks)
}

// TestTenantsBudgetDropsLastBlocksOfClosedReader: the budget deletes the
// last segment holding blocks of a tenant whose reader closed without
// reading them; the tenant's state goes with it, but the drops are counted
// first and reach the tenant's next reader's metrics.
func TestTenantsBudgetDropsLastBlocksOfClosedReader(t *testing.T) {
	q, sts := openTenants(t, Config{Dir: filepath.Join(t.TempDir(), "ep"), MaxSize: 96 << 10, SegmentSize: 32 << 10}, "a")
	first := appendRound(t, q, 3, 2000, "a")["a"]
	require.NoError(t, sts["a"].Close())
	for range 30 {
		appendRound(t, q, 1, 6000, "b")
	}
	a, err := q.Stream("a", 0, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Empty(t, drainStream(t, a, 10))
	blocks, samples := streamDropped(a, reasonBudget)
	require.Equal(t, 3, blocks)
	require.Equal(t, sumSamples(first), samples)
}
