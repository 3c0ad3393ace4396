package remotewrite

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// retryAfterCapFactor bounds a receiver's Retry-After hint to this many
// MaxBackoff, so one odd answer cannot park the queue for hours.
const retryAfterCapFactor = 10

// logEvery is how often a repeated failure of one kind is logged.
const logEvery = time.Minute

// sendBlock delivers one block, retrying recoverable failures forever with
// exponential backoff, and reports whether the block is done: sent, or
// refused for good (dropped and counted). It returns false only when the
// caller is shutting down: stop (the Run context) ends the waits between
// attempts, and sendCtx (stop plus the flush deadline) ends an attempt in
// flight. A block not done stays in the WAL for the next start.
func (q *Queue) sendBlock(stop, sendCtx context.Context, b wal.Block) bool {
	qc := q.cfg.QueueConfig
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(qc.MinBackoff),
		backoff.WithMaxInterval(qc.MaxBackoff),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.1),
		backoff.WithMaxElapsedTime(0),
	)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			q.metrics.retried.Add(float64(b.Samples))
		}
		err := q.client.store(sendCtx, b.Data, protoContentType)
		if err == nil {
			q.metrics.sent.Add(float64(b.Samples))
			q.metrics.bytesSent.Add(float64(len(b.Data)))
			q.metrics.lastSuccess.Set(float64(q.now().UnixNano()) / 1e9)
			q.metrics.sentUpTo(b.MaxTimestamp)
			return true
		}
		var (
			rerr recoverableError
			herr httpStatusError
		)
		switch {
		case errors.As(err, &rerr):
			q.metrics.failed.Add(float64(b.Samples))
			wait := rerr.retryAfter
			if wait > 0 {
				wait = min(wait, retryAfterCapFactor*qc.MaxBackoff)
			} else {
				wait = min(bo.NextBackOff(), qc.MaxBackoff)
			}
			if ok, suppressed := q.retryLog.allow(); ok {
				q.logger.Warn("send failed, will retry", "err", err, "seq", b.Seq,
					"samples", b.Samples, "retry_in", wait, "suppressed", suppressed)
			}
			if q.sleep(stop, wait) != nil {
				return false
			}
		case errors.As(err, &herr):
			q.metrics.droppedHTTP.Add(float64(b.Samples))
			if ok, suppressed := q.dropLog.allow(); ok {
				q.logger.Error("receiver refused block, dropped", "code", herr.code,
					"answer", herr.body, "seq", b.Seq, "samples", b.Samples, "suppressed", suppressed)
			}
			return true
		default:
			// Shutdown cancelled the attempt.
			return false
		}
	}
}

// sleepCtx waits d or until ctx ends, whichever is first; it is the default
// of Queue.sleep, which tests replace to observe the waits.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// logLimiter lets one line through per interval and counts the rest, so a
// receiver failing every request cannot flood the log. Safe for concurrent
// use.
type logLimiter struct {
	mu         sync.Mutex
	every      time.Duration
	now        func() time.Time
	last       time.Time
	suppressed int
}

func newLogLimiter(every time.Duration, now func() time.Time) *logLimiter {
	return &logLimiter{every: every, now: now}
}

// allow reports whether to log now and how many lines were suppressed
// since the last one logged.
func (l *logLimiter) allow() (bool, int) {
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

// discardLogger is used when New gets a nil logger.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
