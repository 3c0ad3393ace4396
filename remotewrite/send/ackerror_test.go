package send

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
)

// failingAcks is a MemQueue whose first Acks fail, as on a full disk where
// the ack file cannot be written.
type failingAcks struct {
	*rwtest.MemQueue
	failures atomic.Int64
}

func (f *failingAcks) Ack(seq uint64) error {
	if f.failures.Add(-1) >= 0 {
		return errors.New("persist ack: no space left on device")
	}
	return f.MemQueue.Ack(seq)
}

// TestAckErrorKeepsSending: an Ack that cannot be persisted used to end
// Run with an error, which stopped the whole daemon on a full disk while
// the receiver was reachable. Sending must go on.
func TestAckErrorKeepsSending(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request) (int, map[string]string) { return http.StatusOK, nil }).Start()
	cfg := config.Config{URL: rc.URL()}
	cfg.QueueConfig.MaxShards = 1
	bq := &failingAcks{MemQueue: newMemQueue()}
	bq.failures.Store(3)
	q, _ := newTestQueue(t, cfg, bq)
	stop := runQueue(t, q)
	const rounds = 6
	for r := 1; r <= rounds; r++ {
		require.NoError(t, q.Append(context.Background(), roundOf(r, 4)))
	}
	require.Eventually(t, func() bool { return len(rc.Requests()) == rounds }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return bq.AckedSeq() == rounds }, 10*time.Second, 10*time.Millisecond, "later acks persisted")
	requireInOrder(t, rc.Stored(), 4, rounds)
	require.NoError(t, stop(), "Run ends cleanly")
}
