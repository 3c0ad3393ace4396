package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"math"
	"path"
	"strconv"
	"strings"
)

// memLimitFraction is the share of the cgroup memory limit given to the Go
// runtime as its soft limit: the rest covers what the runtime does not
// count (thread stacks outside the heap, the binary, page-cache charges of
// WAL writes), so the GC works harder before the kernel's OOM killer does.
const memLimitFraction = 0.9

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

// defaultMemoryLimit returns the soft memory limit to set when the
// environment does not set GOMEMLIMIT: 90% of the cgroup memory limit of
// this process (cgroup v2 memory.max, else v1 memory.limit_in_bytes), read
// from sysfs (the host's /sys/fs/cgroup). It returns 0 when GOMEMLIMIT is
// set or no finite limit is found: then the runtime keeps its default (no
// limit). A fixed default (say 128 MiB) would be wrong: the live heap grows
// with the number of sandboxes (~280 MiB at 200), and a limit below the live
// heap makes the GC run back to back. The source names where the limit
// came from, for the log.
func defaultMemoryLimit(getenv func(string) string, sysfs fs.FS) (limit int64, source string) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, ""
	}
	var candidates []string
	if cg, err := fs.ReadFile(sysfs, "proc/self/cgroup"); err == nil {
		candidates = cgroupPaths(cg)
	}
	// Inside a container's cgroup namespace the own group is the root.
	candidates = append(candidates, "sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes")
	for _, p := range candidates {
		b, err := fs.ReadFile(sysfs, p)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(v, 10, 64)
		// "max" (v2) or a huge page-rounded value (v1) mean no limit.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			continue
		}
		return int64(float64(n) * memLimitFraction), "/" + p
	}
	return 0, ""
}

// cgroupPaths lists the memory limit files of the groups named in
// /proc/self/cgroup: the v2 unified group ("0::/path") and the v1 memory
// controller's group ("N:memory:/path"), relative to the filesystem root.
func cgroupPaths(procCgroup []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			out = append(out, path.Join("sys/fs/cgroup", parts[2], "memory.max"))
		case parts[1] == "memory" || strings.Contains(","+parts[1]+",", ",memory,"):
			out = append(out, path.Join("sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"))
		}
	}
	return out
}
