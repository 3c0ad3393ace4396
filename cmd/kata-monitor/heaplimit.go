package main

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// The Go runtime's memory that is not heap objects is not all free to
// grow: freed heap pages the scavenger has not returned yet stay in the
// RSS (measured at 200 sandboxes with 8 pull clients: 5-8 MiB at the
// peak, docs/benchmarks.md "Session 6, push side and runtime"). GOGC
// bounds only the heap objects (the goal is the live heap plus GOGC
// percent of it); a soft memory limit (debug.SetMemoryLimit) bounds all
// the runtime's memory, free pages included: when the total nears the
// limit, the scavenger returns free pages at once rather than over the
// next minutes, and the GC starts early. A fixed limit is wrong for a
// daemon whose live heap grows with the sandboxes (below the live heap
// the GC runs back to back; README "Resource use"), so followHeap sets,
// after every GC cycle, the limit GOGC already implies: the goal of that
// cycle (live heap and GOGC percent of the live heap, stacks and globals,
// the runtime's formula) plus what the runtime holds besides heap objects
// at that moment (fragmentation in spans, GC metadata, stacks, other
// runtime memory), plus heapLimitSlack, plus the headroom the runtime
// takes off a memory limit's heap goal (heapLimitHeadroom). The GC goal is then the same as
// without the limit; what goes is the free memory kept on top of it.

// heapLimitSlack is room above the computed limit for what the runtime
// allocates between two GCs besides the heap (stacks of new goroutines,
// span and GC metadata of a growing heap), so the limit does not make the
// GC start before its GOGC goal.
const heapLimitSlack = 2 << 20

// heapLimitHeadroom is the share added to the limit for the headroom the
// runtime takes off a memory limit's heap goal (3 % of it; see
// heapLimitFor): 3/97 rounded up.
const heapLimitHeadroom = 0.031

// heapLimitFloor is the lowest limit followHeap sets: while the heap of a
// starting daemon grows from nothing, a limit just above a few MiB would
// make the GC run every few hundred KiB allocated (measured: 7 extra GCs in
// the first second at 200 sandboxes).
const heapLimitFloor = 32 << 20

// heapMetrics are the runtime/metrics samples followHeap reads, in this
// order.
var heapMetrics = []string{
	"/gc/heap/live:bytes",                 // heap objects marked live by the last GC
	"/gc/scan/stack:bytes",                // scannable stack bytes, part of the GOGC formula
	"/gc/scan/globals:bytes",              // scannable globals, likewise
	"/gc/gogc:percent",                    // GOGC in force (negative: off)
	"/memory/classes/total:bytes",         // all memory mapped by the runtime
	"/memory/classes/heap/released:bytes", // of which returned to the OS
	"/memory/classes/heap/free:bytes",     // of which free and not returned
	"/memory/classes/heap/objects:bytes",  // of which heap objects, live or not yet swept
}

// heapLimitFor returns the soft memory limit for the runtime's state in v
// (heapMetrics' values): the GOGC goal of the last cycle, plus the memory
// the runtime holds beside the heap objects, plus heapLimitSlack, plus
// heapLimitHeadroom of that sum, clamped
// to [heapLimitFloor, ceiling]. ok is false when GOGC is off (the
// operator asked for no GOGC goal: nothing to follow).
func heapLimitFor(v [8]uint64, ceiling int64) (limit int64, ok bool) {
	live, stacks, globals, gogc := v[0], v[1], v[2], int64(v[3])
	total, released, free, objects := v[4], v[5], v[6], v[7]
	if gogc < 0 { // GOGC=off reads as 1<<64-1
		return 0, false
	}
	goal := float64(live) + float64(live+stacks+globals)*float64(gogc)/100
	var other float64 // mapped and not returned, beside free pages and objects
	if held := released + free + objects; total > held {
		other = float64(total - held)
	}
	// The runtime's memory-limit heap goal is the limit less that other
	// memory less a headroom of 3 % of what remains (at least 1 MiB;
	// memoryLimitHeapGoal in runtime/mgcpacer.go, Go 1.21 on): room for it
	// too, else above a ~65 MiB goal the headroom exceeds heapLimitSlack
	// and the GC starts before its GOGC goal.
	l := goal + other + heapLimitSlack
	l += l * heapLimitHeadroom
	if l >= float64(ceiling) {
		return ceiling, true
	}
	return max(int64(l), min(heapLimitFloor, ceiling)), true
}

// heapLimiter runs followHeap's policy (see above) until stopped.
type heapLimiter struct {
	ceiling int64                  // the limit in force before: the cgroup's share, or none
	set     func(int64) int64      // debug.SetMemoryLimit
	read    func([]metrics.Sample) // metrics.Read
	logger  *slog.Logger
	samples []metrics.Sample
	mu      sync.Mutex
	stopped bool // under mu: no limit is set after stop's
	// cycles counts the limits set, for tests.
	cycles atomic.Int64
}

// followHeap starts re-setting the runtime's soft memory limit after every
// GC (see above) until the returned limiter's stop, which restores the
// limit in force before. It does nothing and returns nil when GOMEMLIMIT
// is set (getenv): an operator's limit wins, and a cgroup's limit
// (setMemoryLimit) stays the ceiling. It returns at once; the work runs
// after each GC cycle.
func followHeap(getenv func(string) string, logger *slog.Logger) *heapLimiter {
	if getenv("GOMEMLIMIT") != "" {
		logger.Debug("GOMEMLIMIT is set: the soft memory limit does not follow the heap")
		return nil
	}
	h := &heapLimiter{ceiling: debug.SetMemoryLimit(-1), set: debug.SetMemoryLimit, read: metrics.Read, logger: logger}
	h.samples = make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		h.samples[i].Name = name
	}
	h.arm()
	return h
}

// stop ends the updates and restores the ceiling; no limit is set after
// it returns. Safe on a nil limiter (followHeap's "off").
func (h *heapLimiter) stop() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.set(h.ceiling)
}

// arm makes the next GC cycle call update: a cleanup attached to an
// object nothing references runs once the GC has found it unreachable,
// i.e. after the cycle that follows.
func (h *heapLimiter) arm() {
	runtime.AddCleanup(new([32]byte), func(h *heapLimiter) {
		h.mu.Lock()
		stopped := h.stopped
		h.mu.Unlock()
		if !stopped {
			h.update()
			h.arm()
		}
	}, h)
}

// update sets the limit for the runtime's state now.
func (h *heapLimiter) update() {
	h.read(h.samples)
	var v [8]uint64
	for i, s := range h.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	limit, ok := heapLimitFor(v, h.ceiling)
	if !ok {
		limit = h.ceiling
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	h.set(limit)
	h.cycles.Add(1)
}
