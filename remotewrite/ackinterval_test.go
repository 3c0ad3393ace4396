package remotewrite

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCoalescedAck: a queue with WithAckInterval persists its
// acknowledged position at most once per interval; a deferred one is persisted by the timer, and by
// Close at the latest, so nothing acknowledged is left unpersisted.
func TestCoalescedAck(t *testing.T) {
	mq := newMemQueue()
	c := &coalescedAck{blockQueue: mq, every: time.Second, now: time.Now}
	require.NoError(t, c.Ack(1))
	require.Equal(t, uint64(1), mq.AckedSeq(), "the first is persisted at once")
	require.NoError(t, c.Ack(2))
	require.NoError(t, c.Ack(3))
	require.Equal(t, uint64(1), mq.AckedSeq(), "deferred within the interval")
	require.Eventually(t, func() bool { return mq.AckedSeq() == 3 }, 10*time.Second, 10*time.Millisecond, "the timer persists it")
	require.NoError(t, c.Ack(4))
	require.Equal(t, uint64(3), mq.AckedSeq())
	require.NoError(t, c.Close())
	require.Equal(t, uint64(4), mq.AckedSeq(), "Close persists the deferred position")
}
