package rwtest

import (
	"syscall"
	"time"
)

// CPUTime is the user + system CPU time of the process so far (for
// benchmarks that report CPU per sample: it counts every goroutine,
// senders and in-process receivers included).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
