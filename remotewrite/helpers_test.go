package remotewrite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// gotRequest is one request a test receiver decoded.
type gotRequest struct {
	header http.Header
	req    wreq
	code   int
}

// receiver is a real HTTP remote-write receiver: it decodes snappy +
// protobuf and answers with whatever respond says for the n-th request
// (0-based). Only requests answered 2xx count as stored.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	respond func(n int, r *http.Request) (code int, header map[string]string)
	// decide, when set, replaces respond and also sees the decoded body.
	// Code 0 closes the connection without an answer (a network error).
	decide func(n int, r *http.Request, wr *wreq) (code int, header map[string]string)

	// answer, when set, is the body of every non-2xx answer.
	answer string
	// tap, when set, gets every request body as sent (under mu).
	tap func(body []byte)
	// v1Only answers 415 to 2.0 requests; noWritten leaves out the Written
	// headers (a 1.x receiver that ignores Content-Type). Set before start.
	v1Only, noWritten bool

	mu   sync.Mutex
	all  []gotRequest
	seen chan struct{} // signalled after every request
}

func newReceiver(t *testing.T, respond func(int, *http.Request) (int, map[string]string)) *receiver {
	t.Helper()
	rc := &receiver{t: t, respond: respond, seen: make(chan struct{}, 1024)}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.handle))
	rc.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused TLS handshakes are expected
	return rc
}

func (rc *receiver) start() *receiver {
	rc.srv.Start()
	rc.t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/api/v1/write" }

func (rc *receiver) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f := codec.FormatV1
	if r.Header.Get("Content-Encoding") == "zstd" {
		f |= codec.FormatZstd
	}
	if r.Header.Get("Content-Type") == codec.ContentTypeV2 {
		f |= codec.FormatV2
	}
	if rc.v1Only && f.V2() {
		http.Error(w, "unsupported", http.StatusUnsupportedMediaType)
		rc.mu.Lock()
		rc.all = append(rc.all, gotRequest{header: r.Header.Clone(), code: http.StatusUnsupportedMediaType})
		rc.mu.Unlock()
		rc.signal()
		return
	}
	wr, err := decodeWreq(body, f)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	n := len(rc.all)
	code, hdr := http.StatusNoContent, map[string]string(nil)
	switch {
	case rc.decide != nil:
		code, hdr = rc.decide(n, r, &wr)
	case rc.respond != nil:
		code, hdr = rc.respond(n, r)
	}
	rc.all = append(rc.all, gotRequest{header: r.Header.Clone(), req: wr, code: code})
	if rc.tap != nil {
		rc.tap(body)
	}
	rc.mu.Unlock()
	if f.V2() && code/100 == 2 && !rc.noWritten {
		// A 2.0 receiver counts what it wrote; a decide or respond
		// function may override it through hdr.
		w.Header().Set(hdrSamplesWritten, strconv.Itoa(series.Count(wr.Timeseries)))
		w.Header().Set(hdrHistogramsWritten, "0")
		w.Header().Set(hdrExemplarsWritten, "0")
	}
	if code == 0 {
		rc.signal()
		panic(http.ErrAbortHandler) // closes the connection, no answer
	}
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	w.WriteHeader(code)
	if code/100 != 2 {
		if rc.answer != "" {
			fmt.Fprint(w, rc.answer)
		} else {
			fmt.Fprintf(w, "answer %d to request %d", code, n)
		}
	}
	rc.signal()
}

func (rc *receiver) signal() {
	select {
	case rc.seen <- struct{}{}:
	default:
	}
}

// requests returns a copy of every request so far.
func (rc *receiver) requests() []gotRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]gotRequest(nil), rc.all...)
}

// stored returns, per series (labels rendered), the samples of requests
// answered 2xx, in arrival order.
func (rc *receiver) stored() map[string][]series.Sample {
	out := map[string][]series.Sample{}
	for _, g := range rc.requests() {
		if g.code/100 != 2 {
			continue
		}
		for _, ts := range g.req.Timeseries {
			k := labelKey(ts.Labels)
			out[k] = append(out[k], ts.Samples...)
		}
	}
	return out
}

// memQueue is an in-memory blockQueue for sender tests that need no disk.
type memQueue struct {
	mu     sync.Mutex
	blocks []wal.Block
	next   int
	seq    uint64
	group  uint64
	acked  uint64
	closed bool
	notify chan struct{}
}

func newMemQueue() *memQueue { return &memQueue{notify: make(chan struct{}, 1)} }

func (m *memQueue) Append(blocks []wal.Block) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("closed")
	}
	m.group++
	for i := range blocks {
		m.seq++
		blocks[i].Seq, blocks[i].Group = m.seq, m.group
		b := blocks[i]
		b.Data = bytes.Clone(b.Data) // as wal.Queue does
		m.blocks = append(m.blocks, b)
	}
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
	return nil
}

func (m *memQueue) Next(ctx context.Context, max int) ([]wal.Block, error) {
	for {
		m.mu.Lock()
		if m.next < len(m.blocks) {
			g := m.blocks[m.next].Group
			var out []wal.Block
			for m.next < len(m.blocks) && len(out) < max && m.blocks[m.next].Group == g {
				out = append(out, m.blocks[m.next])
				m.next++
			}
			m.mu.Unlock()
			return out, nil
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-m.notify:
		}
	}
}

func (m *memQueue) Ack(seq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq < m.acked {
		return fmt.Errorf("ack %d below %d", seq, m.acked)
	}
	m.acked = seq
	return nil
}

func (m *memQueue) Stats() wal.Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	var st wal.Stats
	for _, b := range m.blocks {
		if b.Seq <= m.acked {
			continue
		}
		if st.PendingBlocks == 0 {
			st.OldestPending = b.MinTimestamp
		}
		st.PendingBlocks++
		st.PendingSamples += b.Samples
	}
	st.AckedSeq, st.LastSeq = m.acked, m.seq
	return st
}

func (m *memQueue) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (m *memQueue) ackedSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acked
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

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

// runQueue runs q in the background; the returned stop cancels it and
// returns Run's error. Cleanup stops it too.
func runQueue(t *testing.T, q *Queue) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- q.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// Shorthands for the builders and the independent decoder shared with
// the other remote write packages' tests (package rwtest).
var (
	mkSeries   = rwtest.Series
	sample     = rwtest.Sample
	benchRound = rwtest.BenchRound
	v2Round    = rwtest.V2Round
	labelKey   = rwtest.LabelKey
)

type wreq = rwtest.Request

func decodeWreq(body []byte, f codec.Format) (wreq, error) {
	return rwtest.Decode(body, f.V2(), f.Zstd())
}

// newSwitchReceiver starts a receiver that answers 503 until up is set,
// then 204: a receiver that is down, then back.
func newSwitchReceiver(t *testing.T) (*receiver, *atomic.Bool) {
	up := new(atomic.Bool)
	rc := newReceiver(t, func(int, *http.Request) (int, map[string]string) {
		if up.Load() {
			return http.StatusNoContent, nil
		}
		return http.StatusServiceUnavailable, nil
	}).start()
	return rc, up
}

// testComp is a compressor for tests.
func testComp(t testing.TB) *codec.Compressor {
	t.Helper()
	c, err := codec.NewCompressor()
	require.NoError(t, err)
	return c
}
