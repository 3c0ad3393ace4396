package fakeshim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/sockets"
)

// startShim starts a Shim on a short socket path and closes it at cleanup.
func startShim(t *testing.T, opts Options) *Shim {
	t.Helper()
	dir := sockets.Dir(t)
	s, err := Start(filepath.Join(dir, "shim-monitor.sock"), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// unixClient returns an HTTP client that dials socket for every URL.
func unixClient(t *testing.T, socket string) *http.Client {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// get fetches path from the shim and returns status and body.
func get(ctx context.Context, c *http.Client, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://shim"+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestMetricsRounds(t *testing.T) {
	tmpl := []byte("# TYPE c counter\nc 1\n# TYPE g gauge\ng 5\n")
	tests := []struct {
		name string
		opts Options
		tmpl []byte
	}{
		{name: "shared exposition", opts: Options{}, tmpl: nil},
		{name: "custom template", opts: Options{Exposition: tmpl}, tmpl: tmpl},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startShim(t, tt.opts)
			c := unixClient(t, s.Socket())
			for n := int64(1); n <= 3; n++ {
				code, body, err := get(t.Context(), c, "/metrics")
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code)
				require.Equal(t, string(ExpositionAt(tt.tmpl, n)), string(body), "scrape %d", n)
				require.Equal(t, n, s.Scrapes())
			}
		})
	}
}

func TestKnobs(t *testing.T) {
	tests := []struct {
		name     string
		set      func(s *Shim)
		wantCode int
		wantBody func(n int64) string
	}{
		{
			name:     "status",
			set:      func(s *Shim) { s.SetStatus(http.StatusInternalServerError) },
			wantCode: http.StatusInternalServerError,
			wantBody: func(int64) string { return "fake shim failure 500\n" },
		},
		{
			name:     "status reset",
			set:      func(s *Shim) { s.SetStatus(http.StatusBadGateway); s.SetStatus(0) },
			wantCode: http.StatusOK,
			wantBody: func(n int64) string { return string(ExpositionAt(nil, n)) },
		},
		{
			name:     "raw body",
			set:      func(s *Shim) { s.SetBody([]byte("\xff\xfe garbage {")) },
			wantCode: http.StatusOK,
			wantBody: func(int64) string { return "\xff\xfe garbage {" },
		},
		{
			name:     "raw body reset",
			set:      func(s *Shim) { s.SetBody([]byte("x")); s.SetBody(nil) },
			wantCode: http.StatusOK,
			wantBody: func(n int64) string { return string(ExpositionAt(nil, n)) },
		},
		{
			name: "body per scrape",
			set: func(s *Shim) {
				s.SetBodyFunc(func(n int64) []byte { return []byte(fmt.Sprintf("g %d 1000\n", n)) })
			},
			wantCode: http.StatusOK,
			wantBody: func(n int64) string { return fmt.Sprintf("g %d 1000\n", n) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startShim(t, Options{})
			c := unixClient(t, s.Socket())
			tt.set(s)
			for n := int64(1); n <= 2; n++ {
				code, body, err := get(t.Context(), c, "/metrics")
				require.NoError(t, err)
				require.Equal(t, tt.wantCode, code)
				require.Equal(t, tt.wantBody(n), string(body))
			}
			require.Equal(t, int64(2), s.Scrapes(), "every outcome counts")
		})
	}
}

func TestLatencyHonoursContext(t *testing.T) {
	s := startShim(t, Options{})
	c := unixClient(t, s.Socket())
	s.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, _, err := get(ctx, c, "/metrics")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool { return s.inflight.Load() == 0 }, 10*time.Second, 10*time.Millisecond,
		"the handler stops waiting when the client leaves")

	s.SetLatency(time.Millisecond)
	code, _, err := get(t.Context(), c, "/metrics")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
}

func TestHangUnblockedByClose(t *testing.T) {
	dir := sockets.Dir(t)
	sock := filepath.Join(dir, "s.sock")
	s, err := Start(sock, Options{})
	require.NoError(t, err)
	c := unixClient(t, sock)
	s.SetHang(true)

	errc := make(chan error, 1)
	go func() {
		_, _, err := get(context.Background(), c, "/metrics")
		errc <- err
	}()
	require.Eventually(t, func() bool { return s.inflight.Load() == 1 }, 10*time.Second, 10*time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("hung request returned early: %v", err)
	default:
	}
	require.NoError(t, s.Close())
	select {
	case err := <-errc:
		require.Error(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock the hung request")
	}
	require.NoFileExists(t, sock)
	require.NoError(t, s.Close(), "second Close")
}

func TestCloseMidResponse(t *testing.T) {
	s := startShim(t, Options{})
	c := unixClient(t, s.Socket())
	s.SetCloseMidResponse(true)
	code, body, err := get(t.Context(), c, "/metrics")
	require.Equal(t, http.StatusOK, code)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	full := ExpositionAt(nil, 1)
	require.Equal(t, string(full[:len(full)/2]), string(body))
}

func TestEndpoints(t *testing.T) {
	s := startShim(t, Options{AgentURL: "vsock://42:1024"})
	c := unixClient(t, s.Socket())
	tests := []struct {
		path     string
		wantCode int
		contains string
	}{
		{path: "/agent-url", wantCode: 200, contains: "vsock://42:1024"},
		{path: "/debug/vars", wantCode: 200, contains: `"memstats"`},
		{path: "/debug/pprof/", wantCode: 200, contains: "<a href=\"heap?debug=1\">"},
		{path: "/debug/pprof/cmdline", wantCode: 200, contains: "containerd-shim-kata-v2\x00-namespace"},
		{path: "/debug/pprof/heap", wantCode: 200, contains: "heap"},
		{path: "/debug/pprof/goroutine?debug=2", wantCode: 200, contains: "goroutine"},
		{path: "/debug/pprof/symbol", wantCode: 200, contains: "num_symbols"},
		{path: "/debug/pprof/profile?seconds=1", wantCode: 200, contains: "chunk 1\n"},
		{path: "/debug/pprof/trace?seconds=1", wantCode: 200, contains: "chunk 0\n"},
		{path: "/debug/pprof/profile?seconds=x", wantCode: 400},
		{path: "/debug/pprof/nope", wantCode: 404},
		{path: "/debug/pprof/heap/x", wantCode: 404},
		{path: "/nope", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body, err := get(t.Context(), c, tt.path)
			require.NoError(t, err)
			require.Equal(t, tt.wantCode, code)
			require.Contains(t, string(body), tt.contains)
		})
	}
	require.Zero(t, s.Scrapes(), "only /metrics counts")
}

func TestStreamEndsWhenClientLeaves(t *testing.T) {
	s := startShim(t, Options{})
	c := unixClient(t, s.Socket())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://shim/debug/pprof/profile?seconds=600", nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	buf := make([]byte, len("chunk 0\n"))
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	require.Equal(t, "chunk 0\n", string(buf), "the first chunk arrives at once")
	cancel()
	require.Eventually(t, func() bool { return s.inflight.Load() == 0 }, 10*time.Second, 10*time.Millisecond)
}

func TestHandlerWithHTTPTest(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	resp, err := srv.Client().Get(srv.URL + "/metrics")
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, string(ExpositionAt(nil, 1)), string(b))

	s.SetHang(true)
	errc := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Get(srv.URL + "/metrics")
		if err == nil {
			// The transport retries an idempotent request on a reused
			// connection that died without an answer: a closed shim says 503.
			if resp.StatusCode != http.StatusServiceUnavailable {
				err = errors.New(resp.Status)
			}
			resp.Body.Close()
			errc <- err
			return
		}
		errc <- nil
	}()
	require.Eventually(t, func() bool { return s.Scrapes() == 2 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, s.Close())
	select {
	case err := <-errc:
		require.NoError(t, err, "the connection is dropped without an answer")
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock the hung handler")
	}

	resp, err = srv.Client().Get(srv.URL + "/metrics")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "closed")
}

func TestStartErrors(t *testing.T) {
	_, err := Start(filepath.Join(t.TempDir(), "missing", "s.sock"), Options{})
	require.Error(t, err)
	require.True(t, errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "no such file"))
}

func BenchmarkServeMetrics(b *testing.B) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	c := srv.Client()
	b.SetBytes(int64(len(sharedExposition)))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(srv.URL + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
