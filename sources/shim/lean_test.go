package shim

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakeshim"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

// TestScrapeHTTP: the scrape's own HTTP/1.1 client (lean.go) against
// net/http's server, one row per way an answer can be framed or a
// connection can end, with how many connections the scrapes took.
// Long for its table.
func TestScrapeHTTP(t *testing.T) {
	body := fakeshim.ExpositionAt(nil, 1)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return buf.Bytes()
	}(body)
	tests := []struct {
		name     string
		handler  func(w http.ResponseWriter, r *http.Request, n int64)
		conns    int64 // connections opened by 3 scrapes
		wantErr  string
		wantBody []byte
	}{
		{
			name: "content-length, kept alive",
			handler: func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.Write(body)
			},
			conns: 1, wantBody: body,
		},
		{
			name: "chunked, kept alive",
			handler: func(w http.ResponseWriter, _ *http.Request, _ int64) {
				for p := range bytes.Lines(body) {
					w.Write(p)
					w.(http.Flusher).Flush()
				}
			},
			conns: 1, wantBody: body,
		},
		{
			name: "gzip chunked, decoded, kept alive",
			handler: func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.Header().Set("Content-Encoding", "gzip")
				w.Write(gz[:100])
				w.(http.Flusher).Flush()
				w.Write(gz[100:])
			},
			conns: 1, wantBody: body,
		},
		{
			name: "connection close, a connection each",
			handler: func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.Header().Set("Connection", "close")
				w.Write(body)
			},
			conns: 3, wantBody: body,
		},
		{
			name: "103 early hints first",
			handler: func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.Header().Set("Link", "</x>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				w.Write(body)
			},
			conns: 1, wantBody: body,
		},
		{
			name: "headers over the limit",
			handler: func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.Header().Set("X-Big", strings.Repeat("a", maxHeaderBytes))
				w.Write(body)
			},
			conns: 3, wantErr: errHeaderTooLarge.Error(),
		},
		{
			name: "request bytes as Go's client sends them",
			handler: func(w http.ResponseWriter, r *http.Request, _ int64) {
				if r.Host != "shim" || r.Header.Get("Accept") != ScrapeAccept || r.Header.Get("Accept-Encoding") != "gzip" ||
					r.Method != http.MethodGet || r.URL.Path != "/metrics" || r.Proto != "HTTP/1.1" {
					http.Error(w, fmt.Sprintf("%s %s %s host %q %v", r.Method, r.URL, r.Proto, r.Host, r.Header), http.StatusBadRequest)
					return
				}
				w.Write(body)
			},
			conns: 1, wantBody: body,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opened, n atomic.Int64
			sock := sockets.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tt.handler(w, r, n.Add(1))
			}), func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					opened.Add(1)
				}
			})
			p := testPool(t, DefaultConfig())
			var buf []byte
			for range 3 {
				out, _, err := p.Scrape(t.Context(), sock, buf)
				if tt.wantErr != "" {
					require.ErrorContains(t, err, tt.wantErr)
					continue
				}
				require.NoError(t, err)
				require.Equal(t, string(tt.wantBody), string(out))
				buf = out
			}
			require.Equal(t, tt.conns, opened.Load(), "connections opened")
		})
	}
}

// TestScrapeStaleConnection: a shim that closes a connection while it is
// idle (a restart, an idle timeout) costs no failed scrape: the GET goes
// again on a new connection.
func TestScrapeStaleConnection(t *testing.T) {
	var opened atomic.Int64
	conns := make(chan net.Conn, 10)
	fake := fakeshim.New(fakeshim.Options{})
	t.Cleanup(func() { require.NoError(t, fake.Close()) })
	sock := sockets.Serve(t, fake.Handler(), func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateIdle:
			conns <- c
		}
	})
	p := testPool(t, DefaultConfig())
	for i := range 3 {
		_, err := p.Metrics(t.Context(), sock, nil)
		require.NoError(t, err, "scrape %d", i)
		// The server closes the connection the scrape left idle.
		require.NoError(t, (<-conns).Close())
	}
	require.Equal(t, int64(3), opened.Load(), "a new connection after each close")
	require.Equal(t, 3.0, p.count(endpointMetrics, resultSuccess))
}

// TestScrapeCancelWhileReading: cancelling ctx ends a scrape blocked in
// the middle of a body at once, and the connection is not reused.
func TestScrapeCancelWhileReading(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	started := make(chan struct{}, 1)
	sock := sockets.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("half"))
		w.(http.Flusher).Flush()
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), nil)
	cfg := DefaultConfig()
	cfg.Timeout = time.Minute
	p := testPool(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Metrics(ctx, sock, nil)
		errc <- err
	}()
	<-started
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the read")
	}
	require.Empty(t, p.Client(sock).lean.idle, "a half-read connection is not kept")
}

// cannedShim serves every request on a unix socket with the same bytes,
// without net/http, so a benchmark measures the client's side.
func cannedShim(tb testing.TB, body []byte) string {
	tb.Helper()
	sock := filepath.Join(sockets.Dir(tb), "canned.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(tb, err)
	resp := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for { // the request ends with an empty line
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() { l.Close(); <-done })
	return sock
}

// BenchmarkScrapeClient: one scrape of a Kata shim's exposition over a unix
// socket, the scrape's client (lean) against net/http's Transport
// (transport, the client before), the server a canned answer. cpu-us/op is
// the process's CPU (user + system) per scrape, the server's included.
func BenchmarkScrapeClient(b *testing.B) {
	body := fakeshim.ExpositionAt(nil, 1)
	sock := cannedShim(b, body)
	c := testPool(b, DefaultConfig()).Client(sock)
	ctx := context.Background()
	run := func(b *testing.B, get func([]byte) ([]byte, error)) {
		buf := make([]byte, 0, 2*len(body))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		var r0, r1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		for b.Loop() {
			out, err := get(buf)
			if err != nil || len(out) != len(body) {
				b.Fatal(err, len(out))
			}
		}
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	}
	b.Run("lean", func(b *testing.B) {
		run(b, func(buf []byte) ([]byte, error) { return c.Metrics(ctx, buf) })
	})
	b.Run("transport", func(b *testing.B) {
		run(b, func(buf []byte) ([]byte, error) {
			ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://shim/metrics", nil)
			req.Header.Set("Accept", ScrapeAccept)
			resp, err := c.http.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			return readCapped(resp.Body, buf[:0], c.cfg.MaxResponseBytes, resp.ContentLength)
		})
	})
}
