package send

import (
	"sync"
	"time"
)

// LogEvery is how often a repeated failure of one kind is logged.
const LogEvery = time.Minute

// LogLimiter lets one line through per interval and counts the rest, so a
// receiver failing every request cannot flood the log. Safe for concurrent
// use.
//
// Prometheus's util/logging.Deduper (a slog.Handler) was considered and
// does not fit: it drops a repeated message silently, so the line that gets
// through cannot say how many were left out ("suppressed" here); it reads
// time.Now, not the sender's clock; and it runs a collection goroutine per
// instance that the owner must Stop.
type LogLimiter struct {
	mu         sync.Mutex
	every      time.Duration
	now        func() time.Time
	last       time.Time
	suppressed int
}

// NewLogLimiter returns a LogLimiter letting one line through per every,
// reading the time from now.
func NewLogLimiter(every time.Duration, now func() time.Time) *LogLimiter {
	return &LogLimiter{every: every, now: now}
}

// Allow reports whether to log now and how many lines were suppressed
// since the last one logged.
func (l *LogLimiter) Allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
