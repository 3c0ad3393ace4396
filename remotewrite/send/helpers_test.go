package send

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// Shorthands for the helpers shared with the other remote write
// packages' tests (package rwtest).
var (
	testLogger        = rwtest.Logger
	mkSeries          = rwtest.Series
	sample            = rwtest.Sample
	v2Round           = rwtest.V2Round
	labelKey          = rwtest.LabelKey
	roundOf           = rwtest.Round
	requireInOrder    = rwtest.RequireInOrder
	newReceiver       = rwtest.NewReceiver
	newMemReceiver    = rwtest.NewMemReceiver
	newMemQueue       = rwtest.NewMemQueue
	newSwitchReceiver = rwtest.NewSwitchReceiver
)

type (
	wreq     = rwtest.Request
	receiver = rwtest.Receiver
)

// testWAL is what a testQueue appends to and its Sender reads from.
type testWAL interface {
	WAL
	Append(blocks []wal.Block) error
	AckedSeq() uint64
}

// testQueue drives a Sender as remotewrite.Queue does, without a disk or
// metadata: Append encodes a round into the in-memory WAL (in 1.0 once the
// sender fell back), Run sends it.
type testQueue struct {
	*Sender
	wal    testWAL
	enc    *codec.Encoder
	format codec.Format
}

func (q *testQueue) Append(_ context.Context, ss []series.Series) error {
	f := q.format
	if q.FellBack() {
		f &^= codec.FormatV2
	}
	blocks, st, err := q.enc.Encode(ss, f)
	if err != nil || len(blocks) == 0 {
		return err
	}
	q.metrics.Appended(st.Samples, st.MaxTimestamp)
	return q.wal.Append(blocks)
}

func (q *testQueue) Run(ctx context.Context) error { return q.Sender.Run(ctx, q.wal) }

// newTestQueue builds a testQueue around w with the transport cfg's config
// builds (rt nil) or rt, and a fresh registry; it fails the test if cfg is
// invalid.
func newTestQueue(t *testing.T, cfg config.Config, w testWAL, rt ...http.RoundTripper) (*testQueue, *prometheus.Registry) {
	t.Helper()
	cfg.ApplyDefaults()
	require.NoError(t, cfg.Validate())
	tr, err := cfg.NewRoundTripper()
	require.NoError(t, err)
	if len(rt) > 0 {
		tr = rt[0]
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"endpoint": cfg.Name}, reg), func() float64 { return 0 })
	require.NoError(t, err)
	comp := testComp(t)
	s := New(cfg, tr, comp, m, testLogger(t), Options{UserAgent: "kata-monitor/test", FlushDeadline: 5 * time.Second})
	return &testQueue{Sender: s, wal: w, enc: codec.NewEncoder(cfg.QueueConfig.MaxSamplesPerSend, cfg.WriteRelabelConfigs, comp),
		format: codec.FormatOf(cfg.ProtobufMessage, cfg.Compression)}, reg
}

// runQueue runs q in the background (rwtest.Run).
func runQueue(t *testing.T, q *testQueue) (stop func() error) { return rwtest.Run(t, q.Run) }

// testComp is a compressor for tests.
func testComp(t testing.TB) *codec.Compressor {
	t.Helper()
	c, err := codec.NewCompressor()
	require.NoError(t, err)
	return c
}

// deliverAll appends rounds to q, runs q until its WAL acknowledged block
// acked, and stops it; Run must not fail. Callers run in a
// testing/synctest bubble, so the generous wait is on the bubble's clock
// (a receiver refusing 20 times costs a minute of backoff, no real time).
func deliverAll(t *testing.T, q *testQueue, acked uint64, rounds ...[]series.Series) {
	t.Helper()
	for _, r := range rounds {
		require.NoError(t, q.Append(context.Background(), r))
	}
	stop := runQueue(t, q)
	require.Eventually(t, func() bool { return q.wal.AckedSeq() == acked }, 10*time.Minute, 5*time.Millisecond)
	require.NoError(t, stop())
}

// fastQueue is a testQueue over a fresh MemQueue whose requests go to an
// in-memory receiver through rt (Receiver.Transport, HandlerTransport),
// its queue_config changed by set (nil: defaults). Callers run in a
// testing/synctest bubble: the real backoff timers then take no time.
func fastQueue(t *testing.T, rt http.RoundTripper, set func(*config.QueueConfig)) (*testQueue, *rwtest.MemQueue) {
	t.Helper()
	cfg := config.Config{URL: "http://receiver.test/api/v1/write"}
	if set != nil {
		set(&cfg.QueueConfig)
	}
	mq := newMemQueue()
	q, _ := newTestQueue(t, cfg, mq, rt)
	return q, mq
}

// roundsOf is rounds 1 to n of nSeries series (rwtest.Round).
func roundsOf(n, nSeries int) [][]series.Series {
	out := make([][]series.Series, n)
	for r := range out {
		out[r] = roundOf(r+1, nSeries)
	}
	return out
}
