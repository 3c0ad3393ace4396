package selfmetrics

import (
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MustSum is Sum for a test: the sum alone (0 when no sample matched),
// failing t when Gather fails.
func MustSum(t testing.TB, g prometheus.Gatherer, name string, kv ...string) float64 {
	t.Helper()
	sum, _, err := Sum(g, name, kv...)
	if err != nil {
		t.Fatalf("gather %s: %v", name, err)
	}
	return sum
}

// CPUTime is the user + system CPU time of the process so far, from
// getrusage(2), for benchmarks that report CPU per sample: it counts every
// goroutine, in-process receivers included.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
