package remotewrite

import (
	"errors"
	"sync"
	"time"
)

// coalescedAck is a WAL whose acknowledged position is persisted (two
// fsyncs, and the deletion of finished segments) at most once per every
// instead of after every group (WithAckInterval): with a queue per tenant,
// a node with 10 tenants would otherwise persist its positions 10 times as
// often as with one queue. An acknowledgement is deferred, and persisted by
// a timer every after the last persisted one, or by Close. What a crash can
// cost is unchanged in kind: groups sent but not persisted as acknowledged
// (at most every's worth) are sent again after a restart (at-least-once;
// receivers take duplicates). Until persisted, the WAL still counts them as
// pending (wal_pending_samples, queue_lag_seconds up to every higher).
type coalescedAck struct {
	blockQueue
	every time.Duration
	now   func() time.Time

	mu       sync.Mutex
	deferred uint64 // acknowledged in memory only; 0: none
	last     time.Time
	timer    *time.Timer
	closed   bool
	errs     func(error) // logs a failed deferred persist
}

func (c *coalescedAck) Ack(seq uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.blockQueue.Ack(seq) // fails with the WAL's own error
	}
	if wait := c.every - c.now().Sub(c.last); wait > 0 {
		c.deferred = max(c.deferred, seq)
		if c.timer == nil {
			c.timer = time.AfterFunc(wait, c.flush)
		}
		return nil
	}
	c.deferred, c.last = 0, c.now()
	return c.blockQueue.Ack(seq)
}

// flush persists a deferred position (the timer's function).
func (c *coalescedAck) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = nil
	if c.closed || c.deferred == 0 {
		return
	}
	seq := c.deferred
	c.deferred, c.last = 0, c.now()
	if err := c.blockQueue.Ack(seq); err != nil && c.errs != nil {
		c.errs(err)
	}
}

// Close persists a deferred position, then closes the WAL.
func (c *coalescedAck) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.blockQueue.Close()
	}
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	var err error
	if c.deferred > 0 {
		err = c.blockQueue.Ack(c.deferred)
		c.deferred = 0
	}
	return errors.Join(err, c.blockQueue.Close())
}
