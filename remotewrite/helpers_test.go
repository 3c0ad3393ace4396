package remotewrite

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

// Shorthands for the helpers shared with the other remote write
// packages' tests (package rwtest).
var (
	testLogger        = rwtest.Logger
	sample            = rwtest.Sample
	v2Round           = rwtest.V2Round
	roundOf           = rwtest.Round
	requireInOrder    = rwtest.RequireInOrder
	benchRound        = rwtest.BenchRound
	newReceiver       = rwtest.NewReceiver
	newMemQueue       = rwtest.NewMemQueue
	newSwitchReceiver = rwtest.NewSwitchReceiver
	gathered          = selfmetrics.MustSum
)

type (
	wreq     = rwtest.Request
	receiver = rwtest.Receiver
)

// newTestQueue builds a Queue around bq with a fresh registry; it fails the
// test if cfg is invalid.
func newTestQueue(t *testing.T, cfg config.Config, bq blockQueue) (*Queue, *prometheus.Registry) {
	t.Helper()
	cfg.ApplyDefaults()
	require.NoError(t, cfg.Validate())
	rt, err := cfg.NewRoundTripper()
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	q, err := newQueue(cfg, bq, rt, testLogger(t), reg, options{userAgent: "kata-monitor/test", flushDeadline: DefaultFlushDeadline})
	require.NoError(t, err)
	return q, reg
}

// runQueue runs q in the background (rwtest.Run).
func runQueue(t *testing.T, q *Queue) (stop func() error) { return rwtest.Run(t, q.Run) }

// These tests run the real WAL and an httptest receiver through New, so
// they run outside a testing/synctest bubble (a socket is not durably
// blocking); they wait on conditions, and fastRetries keeps the real
// backoff between attempts to milliseconds.

// fastRetries returns c with a backoff of 1 to 5 ms.
func fastRetries(c config.Config) config.Config {
	c.QueueConfig.MinBackoff = model.Duration(time.Millisecond)
	c.QueueConfig.MaxBackoff = model.Duration(5 * time.Millisecond)
	return c
}

// tempWAL is the default wal block in a fresh temporary directory.
func tempWAL(t *testing.T) config.WALConfig {
	w := config.DefaultWALConfig()
	w.Dir = t.TempDir()
	return w
}
