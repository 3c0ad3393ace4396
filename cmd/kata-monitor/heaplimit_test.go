package main

import (
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHeapLimitFor(t *testing.T) {
	const mib = 1 << 20
	// live, stacks, globals, gogc, total, released, free, objects
	typical := [8]uint64{20 * mib, 1 * mib, mib / 2, 50, 60 * mib, 10 * mib, 8 * mib, 22 * mib}
	for _, tc := range []struct {
		name    string
		v       [8]uint64
		ceiling int64
		want    int64
		ok      bool
	}{
		// goal 20 + (20+1+0.5)*50% = 30.75; beside free pages and
		// objects the runtime holds 60-10-8-22 = 20; slack 2.
		{"goal, other, slack and headroom", typical, math.MaxInt64, withHeadroom(30*mib + 3*mib/4 + 20*mib + heapLimitSlack), true},
		{"ceiling wins", typical, 40 * mib, 40 * mib, true},
		{"GOGC 100", func() [8]uint64 { v := typical; v[3] = 100; return v }(), math.MaxInt64, withHeadroom(41*mib + mib/2 + 20*mib + heapLimitSlack), true},
		{"floor at start", [8]uint64{2 * mib, mib / 4, mib / 4, 50, 10 * mib, 0, mib, 3 * mib}, math.MaxInt64, heapLimitFloor, true},
		{"ceiling below the floor", [8]uint64{2 * mib, 0, 0, 50, 10 * mib, 0, mib, 3 * mib}, 16 * mib, 16 * mib, true},
		{"objects above total (racy read)", [8]uint64{20 * mib, 0, 0, 50, 30 * mib, 0, 5 * mib, 30 * mib}, math.MaxInt64, withHeadroom(30*mib + heapLimitSlack), true},
		{"GOGC off", func() [8]uint64 { v := typical; v[3] = math.MaxUint64; return v }(), math.MaxInt64, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := heapLimitFor(tc.v, tc.ceiling)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

func withHeadroom(l int64) int64 { return int64(float64(l) + float64(l)*heapLimitHeadroom) }

// TestHeapLimitKeepsGOGCGoal: the heap goal the runtime derives from the
// limit heapLimitFor sets (memoryLimitHeapGoal in runtime/mgcpacer.go:
// the limit less the memory beside heap objects, less a headroom of 3 %
// of the rest, at least 1 MiB) is never below the GOGC goal, small heap or
// large (without the headroom term the GC started early from a ~65 MiB
// goal on: 145.5 instead of 150 MiB at 100 MiB live).
func TestHeapLimitKeepsGOGCGoal(t *testing.T) {
	const mib = 1 << 20
	runtimeGoal := func(limit, nonHeap uint64) uint64 {
		goal := limit - nonHeap
		headroom := max(goal/100*3, 1<<20)
		return goal - headroom
	}
	for _, live := range []uint64{1 * mib, 10 * mib, 50 * mib, 100 * mib, 400 * mib, 4096 * mib} {
		for _, gogc := range []uint64{25, 50, 100, 400} {
			stacks, globals := uint64(mib), uint64(mib/2)
			free, released := live/8, live/4
			objects := live + live/3
			other := 8*mib + live/20 // span metadata, GC bits, stacks
			total := objects + free + released + other
			limit, ok := heapLimitFor([8]uint64{live, stacks, globals, gogc, total, released, free, objects}, math.MaxInt64)
			require.True(t, ok)
			gogcGoal := live + (live+stacks+globals)*gogc/100
			// The runtime's nonHeapMemory: mapped and not released, less
			// free pages and heap objects.
			got := runtimeGoal(uint64(limit), total-released-free-objects)
			require.GreaterOrEqual(t, got, gogcGoal, "live %d MiB, GOGC %d: limit %d", live/mib, gogc, limit)
		}
	}
}

// TestFollowHeap: after GC cycles the runtime's soft limit is the one the
// runtime's own metrics give (at least the floor, finite), and the limit
// in force before comes back at stop, after which none is set; GOMEMLIMIT
// turns it off.
func TestFollowHeap(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	logger := slog.New(slog.DiscardHandler)

	debug.SetMemoryLimit(1 << 40) // a cgroup's share: the ceiling
	h := followHeap(func(string) string { return "" }, logger)
	require.NotNil(t, h)
	require.Eventually(t, func() bool {
		runtime.GC()
		return h.cycles.Load() >= 2
	}, 30*time.Second, 10*time.Millisecond, "no limit set after GC cycles")
	got := debug.SetMemoryLimit(-1)
	require.GreaterOrEqual(t, got, int64(heapLimitFloor))
	require.Less(t, got, int64(1<<40), "the limit follows the heap, below the ceiling")
	h.stop()
	require.EqualValues(t, 1<<40, debug.SetMemoryLimit(-1), "ceiling restored at the end")
	n := h.cycles.Load()
	runtime.GC()
	runtime.GC()
	require.Equal(t, n, h.cycles.Load(), "no update after the end")
	require.EqualValues(t, 1<<40, debug.SetMemoryLimit(-1))

	debug.SetMemoryLimit(math.MaxInt64)
	env := map[string]string{"GOMEMLIMIT": "1GiB"}
	off := followHeap(func(k string) string { return env[k] }, logger)
	require.Nil(t, off)
	off.stop() // a no-op, as serve calls it
	runtime.GC()
	require.EqualValues(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "GOMEMLIMIT: untouched")
}
