package main

import (
	"errors"
	"log/slog"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memLimitRatio is the share of the cgroup memory limit given to the Go
// runtime as its soft limit: the rest covers what the runtime does not
// count (thread stacks outside the heap, the binary, page-cache charges of
// WAL writes), so the GC works harder before the kernel's OOM killer does.
const memLimitRatio = 0.9

// defaultGCPercent is the GC target used when GOGC is not set. The daemon
// allocates little per round (~1.5 MB at 200 sandboxes, against ~50 MiB
// live), so collecting at 1.5x the live heap instead of Go's 2x costs
// little CPU and spares a node a quarter of the RSS: at 200 sandboxes
// with push and 8 pull clients, peak RSS 132 -> 111 MiB for 1.50 -> 1.60
// CPU-s per million samples (docs/benchmarks.md).
const gcPercent = 50

// defaultGCPercent returns the GC percent to set: gcPercent unless
// the environment sets GOGC (which the runtime already applied).
func defaultGCPercent(getenv func(string) string) (int, bool) {
	if getenv("GOGC") != "" {
		return 0, false
	}
	return gcPercent, true
}

// setMemoryLimit sets the Go runtime's soft memory limit to memLimitRatio of
// the limit provider reports (memlimit.FromCgroup in production: cgroup v2
// memory.max or v1 memory.limit_in_bytes of this process's group, found
// through /proc/self/mountinfo), as Prometheus's --auto-gomemlimit does with
// the same library. GOMEMLIMIT in the environment wins (nothing is changed)
// and AUTOMEMLIMIT sets another ratio or "off". Without a finite limit the
// runtime keeps its default (no limit): a fixed default (say 128 MiB) would
// be wrong, as the live heap grows with the number of sandboxes and a limit
// below it makes the GC run back to back; so does a process outside any
// cgroup or on a system without cgroups. It returns the limit now in force
// and the error that left the limit unchanged (an unreadable cgroup file);
// the library has logged both on logger already.
func setMemoryLimit(logger *slog.Logger, provider memlimit.Provider) (int64, error) {
	noCgroupIsNoLimit := func() (uint64, error) {
		n, err := provider()
		if errors.Is(err, memlimit.ErrNoCgroup) || errors.Is(err, memlimit.ErrCgroupsNotSupported) {
			return 0, memlimit.ErrNoLimit
		}
		return n, err
	}
	return memlimit.Set(
		memlimit.WithRatio(memLimitRatio),
		memlimit.WithProvider(noCgroupIsNoLimit),
		memlimit.WithLogger(logger),
	)
}
