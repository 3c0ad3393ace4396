package rwtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// GotRequest is one request a Receiver decoded.
type GotRequest struct {
	Header http.Header
	Req    Request
	Code   int
	At     time.Time // when it arrived (the bubble's clock under testing/synctest)
}

// Receiver is a real HTTP remote-write receiver (httptest): it decodes
// both messages and both compressions, with the spec's header values,
// and answers with whatever Respond (or Decide) says for the n-th request
// (0-based). Only requests answered 2xx count as stored.
type Receiver struct {
	t   *testing.T
	Srv *httptest.Server
	// Respond, when set, decides the answer (code and headers) to the
	// n-th request.
	Respond func(n int, r *http.Request) (code int, header map[string]string)
	// Decide, when set, replaces Respond and also sees the decoded body.
	// Code 0 closes the connection without an answer (a network error).
	Decide func(n int, r *http.Request, wr *Request) (code int, header map[string]string)
	// Answer, when set, is the body of every non-2xx answer.
	Answer string
	// Tap, when set, gets every request body as sent (under Mu).
	Tap func(body []byte)
	// V1Only answers 415 to 2.0 requests; NoWritten leaves out the Written
	// headers (a 1.x receiver that ignores Content-Type). Set before Start.
	V1Only, NoWritten bool

	Mu  sync.Mutex
	all []GotRequest
	// Seen is signalled after every request.
	Seen chan struct{}
}

// NewReceiver returns an unstarted Receiver answering as respond says
// (nil: 204 to everything).
func NewReceiver(t *testing.T, respond func(int, *http.Request) (int, map[string]string)) *Receiver {
	t.Helper()
	rc := &Receiver{t: t, Respond: respond, Seen: make(chan struct{}, 1024)}
	rc.Srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.Handle))
	rc.Srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused TLS handshakes are expected
	return rc
}

// Start starts the server; the test's cleanup closes it.
func (rc *Receiver) Start() *Receiver {
	rc.Srv.Start()
	rc.t.Cleanup(rc.Srv.Close)
	return rc
}

// NewMemReceiver returns a Receiver without a server, reached only through
// Transport: no socket, so it works inside a testing/synctest bubble
// (an httptest server does not: network I/O is not durably blocking).
func NewMemReceiver(t *testing.T, respond func(int, *http.Request) (int, map[string]string)) *Receiver {
	return &Receiver{t: t, Respond: respond, Seen: make(chan struct{}, 1024)}
}

// URL is the receiver's write endpoint (a placeholder host for a
// NewMemReceiver, whose Transport ignores it).
func (rc *Receiver) URL() string {
	if rc.Srv == nil {
		return "http://receiver.test/api/v1/write"
	}
	return rc.Srv.URL + "/api/v1/write"
}

// Transport is an in-memory transport to the receiver's Handle.
func (rc *Receiver) Transport() http.RoundTripper {
	return HandlerTransport(http.HandlerFunc(rc.Handle))
}

// HandlerTransport is an http.RoundTripper that serves each request with h
// in the caller's goroutine, through an httptest.ResponseRecorder. A
// handler that panics with http.ErrAbortHandler is a connection closed
// without an answer; a request whose context ended fails with its error,
// as over a socket.
func HandlerTransport(h http.Handler) http.RoundTripper { return handlerTransport{h} }

type handlerTransport struct{ h http.Handler }

func (ht handlerTransport) RoundTrip(r *http.Request) (resp *http.Response, err error) {
	rec := httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			resp, err = nil, errors.New("connection closed without an answer")
		}
	}()
	ht.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	resp = rec.Result()
	resp.Request = r
	return resp, nil
}

// Content type of a remote write 2.0 request and the Written headers
// (remote write 2.0 specification), spelled out here rather than taken
// from the sender's code.
const (
	contentTypeV2        = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	hdrSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	hdrHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	hdrExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// Handle serves one request (the server's handler; a test that wraps the
// handler calls it).
func (rc *Receiver) Handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v2, zstd := r.Header.Get("Content-Type") == contentTypeV2, r.Header.Get("Content-Encoding") == "zstd"
	if rc.V1Only && v2 {
		http.Error(w, "unsupported", http.StatusUnsupportedMediaType)
		rc.record(GotRequest{Header: r.Header.Clone(), Code: http.StatusUnsupportedMediaType, At: time.Now()})
		return
	}
	wr, err := Decode(body, v2, zstd)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	code, hdr, n := rc.decide(r, &wr, body)
	if v2 && code/100 == 2 && !rc.NoWritten {
		// A 2.0 receiver counts what it wrote; Decide or Respond may
		// override it through hdr.
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
		if rc.Answer != "" {
			fmt.Fprint(w, rc.Answer)
		} else {
			fmt.Fprintf(w, "answer %d to request %d", code, n)
		}
	}
	rc.signal()
}

// decide records the request and returns the answer Decide or Respond
// gives it (204 without either) and the request's number.
func (rc *Receiver) decide(r *http.Request, wr *Request, body []byte) (int, map[string]string, int) {
	rc.Mu.Lock()
	defer rc.Mu.Unlock()
	n := len(rc.all)
	code, hdr := http.StatusNoContent, map[string]string(nil)
	switch {
	case rc.Decide != nil:
		code, hdr = rc.Decide(n, r, wr)
	case rc.Respond != nil:
		code, hdr = rc.Respond(n, r)
	}
	rc.all = append(rc.all, GotRequest{Header: r.Header.Clone(), Req: *wr, Code: code, At: time.Now()})
	if rc.Tap != nil {
		rc.Tap(body)
	}
	return code, hdr, n
}

func (rc *Receiver) record(g GotRequest) {
	rc.Mu.Lock()
	rc.all = append(rc.all, g)
	rc.Mu.Unlock()
	rc.signal()
}

func (rc *Receiver) signal() {
	select {
	case rc.Seen <- struct{}{}:
	default:
	}
}

// Requests returns a copy of every request so far.
func (rc *Receiver) Requests() []GotRequest {
	rc.Mu.Lock()
	defer rc.Mu.Unlock()
	return append([]GotRequest(nil), rc.all...)
}

// Stored returns, per series (labels rendered by LabelKey), the samples
// of requests answered 2xx, in arrival order.
func (rc *Receiver) Stored() map[string][]series.Sample {
	out := map[string][]series.Sample{}
	for _, g := range rc.Requests() {
		if g.Code/100 != 2 {
			continue
		}
		for _, ts := range g.Req.Timeseries {
			k := LabelKey(ts.Labels)
			out[k] = append(out[k], ts.Samples...)
		}
	}
	return out
}

// NewSwitchReceiver starts a receiver that answers 503 until up is set,
// then 204: a receiver that is down, then back.
func NewSwitchReceiver(t *testing.T) (*Receiver, *atomic.Bool) {
	up := new(atomic.Bool)
	rc := NewReceiver(t, func(int, *http.Request) (int, map[string]string) {
		if up.Load() {
			return http.StatusNoContent, nil
		}
		return http.StatusServiceUnavailable, nil
	}).Start()
	return rc, up
}

// MemQueue is an in-memory WAL (the contract of wal.Queue) for tests
// that need no disk.
type MemQueue struct {
	mu     sync.Mutex
	blocks []wal.Block
	next   int
	seq    uint64
	group  uint64
	acked  uint64
	closed bool
	notify chan struct{}
}

// NewMemQueue returns an empty MemQueue.
func NewMemQueue() *MemQueue { return &MemQueue{notify: make(chan struct{}, 1)} }

// Append appends blocks as one group, numbering them.
func (m *MemQueue) Append(blocks []wal.Block) error {
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

// Next returns up to max blocks of the next group, waiting for one.
func (m *MemQueue) Next(ctx context.Context, max int) ([]wal.Block, error) {
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

// Ack acknowledges every block up to seq.
func (m *MemQueue) Ack(seq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq < m.acked {
		return fmt.Errorf("ack %d below %d", seq, m.acked)
	}
	m.acked = seq
	return nil
}

// Stats reports the pending blocks as wal.Queue does.
func (m *MemQueue) Stats() wal.Stats {
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

// Close makes later Appends fail.
func (m *MemQueue) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// AckedSeq is the last acknowledged sequence number.
func (m *MemQueue) AckedSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acked
}
