package wal

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// openTenants opens a queue shared by tenants with one stream per tenant.
func openTenants(t testing.TB, cfg Config, tenants ...string) (*Queue, map[string]*Stream) {
	t.Helper()
	cfg.Tenants = true
	q := openTest(t, cfg)
	sts := map[string]*Stream{}
	for _, tn := range tenants {
		st, err := q.Stream(tn, 0, nil)
		require.NoError(t, err)
		sts[tn] = st
	}
	return q, sts
}

// appendRound appends one group per tenant in one AppendGroups call, n
// blocks each of size bytes (payload by seq, as appendN).
func appendRound(t testing.TB, q *Queue, n, size int, tenants ...string) map[string][]Block {
	t.Helper()
	next := q.Stats().LastSeq + 1
	groups := make([][]Block, len(tenants))
	out := map[string][]Block{}
	for g, tn := range tenants {
		for range n {
			groups[g] = append(groups[g], Block{Tenant: tn, Samples: int(next%7) + 1, MaxTimestamp: int64(next) * 1000, Data: payload(next, size)})
			next++
		}
	}
	require.NoError(t, q.AppendGroups(groups))
	for g, tn := range tenants {
		out[tn] = groups[g]
	}
	return out
}

func drainStream(t testing.TB, st *Stream, max int) []Block {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out []Block
	for {
		bs, err := st.Next(ctx, max)
		if err != nil {
			require.ErrorIs(t, err, context.Canceled)
			return out
		}
		out = append(out, bs...)
	}
}

func streamDropped(st *Stream, reason string) (blocks, samples int) {
	return int(testutil.ToFloat64(st.m.droppedBlocks.WithLabelValues(reason))),
		int(testutil.ToFloat64(st.m.droppedSamples.WithLabelValues(reason)))
}

// TestTenantsOneWritePerRound: one AppendGroups of three tenants is one
// fsync (fsync append), each stream reads only its own blocks, in order,
// in groups that never mix tenants.
func TestTenantsOneWritePerRound(t *testing.T) {
	q, sts := openTenants(t, Config{Dir: filepath.Join(t.TempDir(), "ep")}, "a", "b", "c")
	for range 4 {
		appendRound(t, q, 2, 300, "a", "b", "c")
	}
	h := &dtoHistogram{}
	h.read(t, q.m.fsyncDuration)
	require.Equal(t, uint64(4), h.count, "one fsync per round for every tenant")
	for i, tn := range []string{"a", "b", "c"} {
		got := drainStream(t, sts[tn], 10)
		require.Len(t, got, 8)
		requireIntact(t, got, 300)
		for r, b := range got {
			round := uint64(r / 2)
			require.Equal(t, round*6+uint64(2*i)+1, b.Group, "tenant %s block %d", tn, r)
		}
	}
}

// TestTenantsNoHeadOfLineBlocking: a stream that never acks keeps its
// blocks (and their segments) but neither delays the other stream nor
// makes it lose anything; once it acks, the segments go.
func TestTenantsNoHeadOfLineBlocking(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q, sts := openTenants(t, Config{Dir: dir, SegmentSize: 32 << 10}, "fast", "stuck")
	for range 20 {
		appendRound(t, q, 1, 4000, "fast", "stuck")
		got := drainStream(t, sts["fast"], 10)
		require.Len(t, got, 1)
		require.NoError(t, sts["fast"].Ack(got[0].Seq))
	}
	require.Zero(t, sts["fast"].Stats().PendingBlocks)
	require.Equal(t, 20, sts["stuck"].Stats().PendingBlocks)
	require.Greater(t, q.Stats().Segments, 2, "the stuck tenant's blocks keep their segments")
	held := drainStream(t, sts["stuck"], 100)
	require.Len(t, held, 20)
	requireIntact(t, held, 4000)
	require.NoError(t, sts["stuck"].Ack(held[len(held)-1].Seq))
	require.Equal(t, 1, q.Stats().Segments, "every block done: only the active segment is left")
}

// TestTenantsRestartResumesEachStream: after a crash (files copied with the
// queue open) and after a clean close, each tenant resumes after its own
// persisted acknowledgement, and seqs are never reused.
func TestTenantsRestartResumesEachStream(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "clean", true: "crash"}[crash], func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "ep")
			q, sts := openTenants(t, Config{Dir: dir, SegmentSize: 64 << 10}, "a", "b", "c")
			rounds := make([]map[string][]Block, 6)
			for i := range rounds {
				rounds[i] = appendRound(t, q, 2, 7000, "a", "b", "c")
			}
			a := drainStream(t, sts["a"], 100)
			require.NoError(t, sts["a"].Ack(a[7].Seq)) // rounds 0-3
			b := drainStream(t, sts["b"], 100)
			require.NoError(t, sts["b"].Ack(b[1].Seq)) // round 0; c acks nothing
			reopen := dir
			if crash {
				reopen = filepath.Join(root, "crashed", "ep")
				copyDir(t, dir, reopen)
			} else {
				require.NoError(t, q.Close())
			}
			ack, err := disk.ReadAck(reopen)
			require.NoError(t, err)
			require.Equal(t, uint64(0), ack.Seq, "c acked nothing: the floor")
			require.Equal(t, map[string]uint64{"a": a[7].Seq, "b": b[1].Seq}, ack.Tenants)

			r, rs := openTenants(t, Config{Dir: reopen, SegmentSize: 64 << 10})
			require.ElementsMatch(t, []string{"a", "b", "c"}, r.Tenants())
			for tn, from := range map[string]int{"a": 4, "b": 1, "c": 0} {
				st, err := r.Stream(tn, 0, nil)
				require.NoError(t, err)
				rs[tn] = st
				got := drainStream(t, st, 100)
				var want []uint64
				for _, round := range rounds[from:] {
					want = append(want, seqs(round[tn])...)
				}
				require.Equal(t, want, seqs(got), "tenant %s", tn)
				requireIntact(t, got, 7000)
			}
			require.Zero(t, corruptions(r))
			require.Equal(t, rounds[5]["c"][1].Seq+1, appendRound(t, r, 1, 10, "a")["a"][0].Seq)
		})
	}
}

// TestTenantsBudgetDropsOldestWhateverTenant: over the shared budget the
// oldest segments go whichever tenant's blocks they hold; each stream
// counts its own drops, and per stream appended = acked + dropped +
// pending, while a stuck stream holds no more than the budget.
func TestTenantsBudgetDropsOldestWhateverTenant(t *testing.T) {
	const maxSize = 160 << 10
	q, sts := openTenants(t, Config{Dir: filepath.Join(t.TempDir(), "ep"), MaxSize: maxSize, SegmentSize: 32 << 10, Fsync: FsyncSegment}, "a", "b", "stuck")
	rng := rand.New(rand.NewPCG(7, 0))
	appended, acked := map[string]int{}, map[string]int{}
	for range 200 {
		for tn, bs := range appendRound(t, q, 1+rng.IntN(2), 1000+rng.IntN(5000), "a", "b", "stuck") {
			appended[tn] += sumSamples(bs)
		}
		require.LessOrEqual(t, q.Stats().Bytes, int64(maxSize+32<<10))
		for _, tn := range []string{"a", "b"} {
			if rng.IntN(3) == 0 {
				continue // lags a little
			}
			got := drainStream(t, sts[tn], 10)
			if len(got) > 0 {
				require.NoError(t, sts[tn].Ack(got[len(got)-1].Seq))
				acked[tn] += sumSamples(got)
			}
		}
	}
	_, stuckDropped := streamDropped(sts["stuck"], reasonBudget)
	require.Greater(t, stuckDropped, 0, "the stuck tenant's oldest blocks were dropped")
	for _, tn := range []string{"a", "b", "stuck"} {
		_, d := streamDropped(sts[tn], reasonBudget)
		require.Equal(t, appended[tn], acked[tn]+d+sts[tn].Stats().PendingSamples, "tenant %s", tn)
	}
}

// TestTenantsStreamReattach: a detached stream's unacknowledged blocks go
// to the next reader of the tenant; a tenant without a reader keeps its
// blocks; a second reader of one tenant is refused.
func TestTenantsStreamReattach(t *testing.T) {
	q, sts := openTenants(t, Config{Dir: filepath.Join(t.TempDir(), "ep")}, "a")
	_, err := q.Stream("a", 0, nil)
	require.ErrorContains(t, err, "already has a reader")
	_, err = q.Stream("", 0, nil)
	require.Error(t, err)
	r1 := appendRound(t, q, 2, 100, "a", "b")
	got := drainStream(t, sts["a"], 1)
	require.Len(t, got, 2)
	require.NoError(t, sts["a"].Ack(got[0].Seq))
	require.NoError(t, sts["a"].Close())
	require.ErrorIs(t, sts["a"].Close(), ErrClosed)
	require.ElementsMatch(t, []string{"a", "b"}, q.Tenants())
	a, err := q.Stream("a", 0, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Equal(t, []uint64{r1["a"][1].Seq}, seqs(drainStream(t, a, 10)))
	b, err := q.Stream("b", 0, nil)
	require.NoError(t, err)
	require.Equal(t, seqs(r1["b"]), seqs(drainStream(t, b, 10)))
}

// dtoHistogram reads a histogram's sample count.
type dtoHistogram struct{ count uint64 }

func (h *dtoHistogram) read(t testing.TB, c prometheus.Collector) {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	require.NoError(t, (<-ch).Write(&m))
	h.count = m.GetHistogram().GetSampleCount()
}

// TestTenantsTornTail: a crash in the middle of a round's write (the last
// record cut in half) costs that record only: every tenant keeps the
// blocks before the tear, and the torn tenant's stream resumes with them.
func TestTenantsTornTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	cfg := Config{Dir: dir, SegmentSize: 64 << 10}
	q, _ := openTenants(t, cfg)
	rounds := []map[string][]Block{appendRound(t, q, 1, 3000, "a", "b"), appendRound(t, q, 1, 3000, "a", "b")}
	require.NoError(t, q.Close())
	segs := segmentFiles(t, dir)
	last := segs[len(segs)-1]
	ends := recordEnds(t, last)
	require.Len(t, ends, 4)
	require.NoError(t, os.Truncate(last, ends[2]+(ends[3]-ends[2])/2)) // round 2's b

	r, sts := openTenants(t, cfg, "a", "b")
	require.Equal(t, 1, corruptions(r))
	require.Equal(t, []uint64{rounds[0]["a"][0].Seq, rounds[1]["a"][0].Seq}, seqs(drainStream(t, sts["a"], 10)))
	require.Equal(t, seqs(rounds[0]["b"]), seqs(drainStream(t, sts["b"], 10)), "b's block before the tear kept")
}

// TestTenantsCloseWakesNext: detaching a stream returns its reader's
// blocked Next with ErrClosed instead of waiting for it.
func TestTenantsCloseWakesNext(t *testing.T) {
	_, sts := openTenants(t, Config{Dir: filepath.Join(t.TempDir(), "ep")}, "a")
	errc := make(chan error, 1)
	go func() {
		_, err := sts["a"].Next(context.Background(), 1)
		errc <- err
	}()
	require.NoError(t, sts["a"].Close())
	require.ErrorIs(t, <-errc, ErrClosed)
}

// TestTenantsAckInterval: with AckInterval the tenants' acks are taken in
// memory at once (pending counts) and written together: no ack file and no
// segment deleted before the timer (here: an hour), every position in
// the one write that Close makes; with a short interval the timer writes
// them and the done segments go.
func TestTenantsAckInterval(t *testing.T) {
	for _, every := range []time.Duration{time.Hour, 20 * time.Millisecond} {
		t.Run(every.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ep")
			cfg := Config{Dir: dir, SegmentSize: 32 << 10, AckInterval: every}
			q, sts := openTenants(t, cfg, "a", "b", "c")
			for range 8 {
				appendRound(t, q, 1, 6000, "a", "b", "c")
			}
			want := map[string]uint64{}
			for _, tn := range []string{"a", "b", "c"} {
				got := drainStream(t, sts[tn], 100)
				require.NoError(t, sts[tn].Ack(got[len(got)-1].Seq))
				require.NoError(t, sts[tn].Ack(got[len(got)-1].Seq), "acking again is a no-op")
				require.Zero(t, sts[tn].Stats().PendingBlocks, "taken in memory at once")
				want[tn] = got[len(got)-1].Seq
			}
			if every == time.Hour {
				_, err := disk.ReadAck(dir)
				require.ErrorIs(t, err, disk.ErrAckNotFound, "nothing written before the timer")
				require.Greater(t, q.Stats().Segments, 1)
				require.NoError(t, q.Close())
			} else {
				require.Eventually(t, func() bool { return q.Stats().Segments == 1 }, 10*time.Second, 5*time.Millisecond,
					"the timer's write deletes the done segments")
			}
			ack, err := disk.ReadAck(dir)
			require.NoError(t, err)
			for tn, seq := range want {
				require.Equal(t, seq, ack.Done(tn), "tenant %s", tn)
			}
		})
	}
}
