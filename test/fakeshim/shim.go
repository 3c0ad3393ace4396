// Package fakeshim is a faithful fake of a Kata shim's monitor socket
// (<root>/<id>/shim-monitor.sock): /metrics, /agent-url and the debug
// endpoints, served over HTTP on a real unix socket, with knobs for the ways
// a real shim misbehaves (slow, hung, failing, garbage, dropped connections).
//
// Metric values change deterministically from one scrape to the next (see
// ExpositionAt) so tests can check that what arrived downstream is exactly
// what the shim served, round by round.
package fakeshim

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Shim. The zero value serves the shared exposition.
type Options struct {
	// Exposition is the template exposition; nil means the shared one
	// (test/testdata/kata-shim-metrics.prom).
	Exposition []byte
	// AgentURL is the body of /agent-url; empty means "vsock://830455376:1024".
	AgentURL string
}

// Shim is one fake shim. All methods are concurrency-safe; knobs take effect
// for requests that arrive after the call.
type Shim struct {
	tmpl     *template
	agentURL string
	bufs     sync.Pool // *[]byte render buffers
	handler  http.Handler

	scrapes atomic.Int64
	latency atomic.Int64 // time.Duration
	hang    atomic.Bool
	status  atomic.Int64
	body    atomic.Pointer[[]byte]
	bodyFn  atomic.Pointer[func(n int64) []byte]
	cutOff  atomic.Bool
	headers atomic.Pointer[http.Header]
	gzip    atomic.Bool
	accept  atomic.Pointer[string]

	// mu guards closed against wg.Add racing Close's wg.Wait.
	mu       sync.Mutex
	closed   bool
	done     chan struct{} // closed by Close: unblocks hangs and streams
	wg       sync.WaitGroup
	inflight atomic.Int64

	// Set by Start only.
	socket string
	srv    *http.Server
	served chan struct{} // closed when Serve returned
}

// New returns a Shim that serves only through Handler (for httptest); it
// listens on nothing. Close still unblocks its hung requests.
func New(opts Options) *Shim {
	exp := opts.Exposition
	if exp == nil {
		exp = sharedExposition
	}
	s := &Shim{
		tmpl:     compile(exp),
		agentURL: opts.AgentURL,
		done:     make(chan struct{}),
	}
	if s.agentURL == "" {
		s.agentURL = "vsock://830455376:1024"
	}
	s.handler = s.routes()
	return s
}

// Start listens on the unix socket socketPath (its parent directory must
// exist) and serves until Close. It does not block.
func Start(socketPath string, opts Options) (*Shim, error) {
	s := New(opts)
	l, err := net.Listen("unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", socketPath, err)
	}
	s.socket = socketPath
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served) // waited for by Close
		_ = s.srv.Serve(l)    // always ErrServerClosed after Close
	}()
	return s, nil
}

// Socket returns the socket path given to Start ("" for New).
func (s *Shim) Socket() string { return s.socket }

// Handler returns the shim's HTTP handler, the one Start serves; use it with
// httptest. Requests arriving after Close get 503.
func (s *Shim) Handler() http.Handler { return s.handler }

// SetLatency makes every /metrics answer wait d first (or until the client
// goes away or Close). 0 disables it.
func (s *Shim) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// SetHang makes /metrics never answer until the client goes away or Close.
func (s *Shim) SetHang(on bool) { s.hang.Store(on) }

// SetStatus makes /metrics answer code with a short text body; 0 restores
// normal answers.
func (s *Shim) SetStatus(code int) { s.status.Store(int64(code)) }

// SetBody makes /metrics serve b verbatim instead of the exposition (garbage,
// non-UTF-8, huge...); nil restores the exposition. b must not be modified
// afterwards.
func (s *Shim) SetBody(b []byte) {
	if b == nil {
		s.body.Store(nil)
		return
	}
	s.body.Store(&b)
}

// SetBodyFunc makes /metrics serve fn(n) on its n-th request (n counts
// every request, as in ExpositionAt), e.g. an exposition whose explicit
// timestamps freeze or step back; nil restores the exposition. SetBody
// wins over it. fn must be safe for concurrent calls.
func (s *Shim) SetBodyFunc(fn func(n int64) []byte) {
	if fn == nil {
		s.bodyFn.Store(nil)
		return
	}
	s.bodyFn.Store(&fn)
}

// SetCloseMidResponse makes /metrics announce the full length, write half
// the body, then drop the connection.
func (s *Shim) SetCloseMidResponse(on bool) { s.cutOff.Store(on) }

// SetHeaders makes /metrics answer with these headers set on top of (and
// replacing) the usual ones, e.g. another Content-Type, or a
// Content-Encoding the body given to SetBody is already in. nil restores
// the defaults. h must not be modified afterwards.
func (s *Shim) SetHeaders(h http.Header) {
	if h == nil {
		s.headers.Store(nil)
		return
	}
	s.headers.Store(&h)
}

// SetGzip makes /metrics compress its answer with gzip when the request's
// Accept-Encoding allows it, as promhttp does.
func (s *Shim) SetGzip(on bool) { s.gzip.Store(on) }

// LastAccept returns the Accept header of the last /metrics request.
func (s *Shim) LastAccept() string {
	if p := s.accept.Load(); p != nil {
		return *p
	}
	return ""
}

// Scrapes returns how many /metrics requests arrived, whatever their outcome.
func (s *Shim) Scrapes() int64 { return s.scrapes.Load() }

// Close stops listening, closes active connections, unblocks hung and
// streaming requests, waits for in-flight handlers to return and removes the
// socket file. Safe to call more than once.
func (s *Shim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()

	var errs []error
	if s.srv != nil {
		if err := s.srv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close server: %w", err))
		}
		<-s.served
	}
	s.wg.Wait()
	if s.socket != "" {
		if err := os.Remove(s.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove socket: %w", err))
		}
	}
	return errors.Join(errs...)
}

// track wraps h so Close can wait for every handler to return.
func (s *Shim) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			http.Error(w, "shim closed", http.StatusServiceUnavailable)
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		s.inflight.Add(1)
		defer func() {
			s.inflight.Add(-1)
			s.wg.Done()
		}()
		h.ServeHTTP(w, r)
	})
}
