package shim

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakeshim"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

// TestMetrics: what Metrics returns for each way a real shim socket answers
// (whole, at or over the size cap, 500, hung, slow, closed mid-response).
// Long for its table, one row per way a shim answers.
func TestMetrics(t *testing.T) {
	exposition := fakeshim.ExpositionAt(nil, 1)
	tests := []struct {
		name       string
		cfg        func(*Config)
		set        func(*fakeshim.Shim)
		want       []byte
		wantErr    error
		wantStatus int
		wantResult string
	}{
		{name: "ok", set: func(*fakeshim.Shim) {}, want: exposition, wantResult: resultSuccess},
		{
			name:       "garbage is returned verbatim",
			set:        func(s *fakeshim.Shim) { s.SetBody([]byte("\xff\x00 not metrics {")) },
			want:       []byte("\xff\x00 not metrics {"),
			wantResult: resultSuccess,
		},
		{
			name:       "body exactly at the cap",
			cfg:        func(c *Config) { c.MaxResponseBytes = 1000 },
			set:        func(s *fakeshim.Shim) { s.SetBody(bytes.Repeat([]byte("a"), 1000)) },
			want:       bytes.Repeat([]byte("a"), 1000),
			wantResult: resultSuccess,
		},
		{
			name:       "too large",
			cfg:        func(c *Config) { c.MaxResponseBytes = 1000 },
			set:        func(s *fakeshim.Shim) { s.SetBody(bytes.Repeat([]byte("a"), 1001)) },
			wantErr:    ErrTooLarge,
			wantResult: resultTooLarge,
		},
		{
			name:       "500",
			set:        func(s *fakeshim.Shim) { s.SetStatus(http.StatusInternalServerError) },
			wantStatus: http.StatusInternalServerError,
			wantResult: resultError,
		},
		{
			name:       "hung shim",
			cfg:        func(c *Config) { c.Timeout = 200 * time.Millisecond },
			set:        func(s *fakeshim.Shim) { s.SetHang(true) },
			wantErr:    context.DeadlineExceeded,
			wantResult: resultTimeout,
		},
		{
			name:       "slow shim",
			cfg:        func(c *Config) { c.Timeout = 200 * time.Millisecond },
			set:        func(s *fakeshim.Shim) { s.SetLatency(time.Hour) },
			wantErr:    context.DeadlineExceeded,
			wantResult: resultTimeout,
		},
		{
			name:       "closed mid-response",
			set:        func(s *fakeshim.Shim) { s.SetCloseMidResponse(true) },
			wantErr:    io.ErrUnexpectedEOF,
			wantResult: resultError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			p := testPool(t, cfg)
			fake := startFake(t)
			tt.set(fake)

			start := time.Now()
			out, err := p.Metrics(t.Context(), fake.Socket(), nil)
			elapsed := time.Since(start)
			require.Less(t, elapsed, 10*cfg.Timeout, "bounded by the timeout")
			require.Equal(t, 1.0, p.count(endpointMetrics, tt.wantResult))

			switch {
			case tt.wantStatus != 0:
				var serr *StatusError
				require.ErrorAs(t, err, &serr)
				require.Equal(t, tt.wantStatus, serr.Code)
				require.Contains(t, serr.Body, "fake shim failure")
				require.Empty(t, out)
			case tt.wantErr != nil:
				require.ErrorIs(t, err, tt.wantErr)
				require.Empty(t, out)
			default:
				require.NoError(t, err)
				require.Equal(t, string(tt.want), string(out))
			}
		})
	}
}

func TestMetricsBufferReuse(t *testing.T) {
	p := testPool(t, DefaultConfig())
	fake := startFake(t)
	buf := make([]byte, 0, 1<<20)
	for n := int64(1); n <= 3; n++ {
		out, err := p.Metrics(t.Context(), fake.Socket(), buf)
		require.NoError(t, err)
		require.Equal(t, string(fakeshim.ExpositionAt(nil, n)), string(out), "round %d", n)
		require.Same(t, &buf[:1][0], &out[:1][0], "round %d reuses the buffer", n)
		buf = out
	}

	// An undersized buffer grows once and is kept on error too.
	small := make([]byte, 0, 16)
	out, err := p.Metrics(t.Context(), fake.Socket(), small)
	require.NoError(t, err)
	require.Equal(t, string(fakeshim.ExpositionAt(nil, 4)), string(out))
	fake.SetStatus(http.StatusServiceUnavailable)
	failed, err := p.Metrics(t.Context(), fake.Socket(), out)
	require.Error(t, err)
	require.Empty(t, failed)
	require.Equal(t, cap(out), cap(failed), "storage kept for the next round")
}

func TestMetricsTooLargeStream(t *testing.T) {
	// No Content-Length: the cap must stop the read, not the end of the body.
	var written atomic.Int64
	sock := sockets.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 4096)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			written.Add(int64(len(chunk)))
		}
	}), nil)
	cfg := DefaultConfig()
	cfg.MaxResponseBytes = 64 << 10
	p := testPool(t, cfg)
	out, err := p.Metrics(t.Context(), sock, nil)
	require.ErrorIs(t, err, ErrTooLarge)
	require.Empty(t, out)
	require.LessOrEqual(t, cap(out), 4*int(cfg.MaxResponseBytes), "buffered about the cap, no more")
	require.Equal(t, 1.0, p.count(endpointMetrics, resultTooLarge))
}

func TestMetricsNobodyListening(t *testing.T) {
	dir := sockets.Dir(t)
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	require.NoError(t, err)
	l.SetUnlinkOnClose(false)
	require.NoError(t, l.Close())
	require.FileExists(t, stale)

	tests := []struct {
		name   string
		socket string
	}{
		{name: "socket file left behind", socket: stale},
		{name: "no socket file", socket: filepath.Join(dir, "missing.sock")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Timeout = time.Minute
			p := testPool(t, cfg)
			start := time.Now()
			_, err := p.Metrics(t.Context(), tt.socket, nil)
			require.Error(t, err)
			require.Less(t, time.Since(start), cfg.Timeout, "fails fast, without waiting for the timeout")
			require.Contains(t, err.Error(), tt.socket, "the error names the socket")
			require.Equal(t, 1.0, p.count(endpointMetrics, resultError))
		})
	}
}

func TestMetricsParentContext(t *testing.T) {
	p := testPool(t, DefaultConfig())
	fake := startFake(t)
	fake.SetHang(true)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Metrics(ctx, fake.Socket(), nil)
		errc <- err
	}()
	require.Eventually(t, func() bool { return fake.Scrapes() == 1 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling ctx did not end the request")
	}
}

func TestKeepAliveAndForget(t *testing.T) {
	fake := fakeshim.New(fakeshim.Options{})
	t.Cleanup(func() { require.NoError(t, fake.Close()) })
	var opened, closed atomic.Int64
	sock := sockets.Serve(t, fake.Handler(), func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	})
	p := testPool(t, DefaultConfig())
	var buf []byte
	for range 5 {
		var err error
		buf, err = p.Metrics(t.Context(), sock, buf)
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), opened.Load(), "one connection for every round")
	require.Same(t, p.Client(sock), p.Client(sock))

	old := p.Client(sock)
	p.Forget(sock)
	require.Eventually(t, func() bool { return closed.Load() == 1 }, 10*time.Second, 10*time.Millisecond,
		"Forget closes the idle connection")
	require.NotSame(t, old, p.Client(sock), "a fresh client after Forget")
	_, err := p.Metrics(t.Context(), sock, buf)
	require.NoError(t, err)
	require.Equal(t, int64(2), opened.Load())
	p.Forget("/never/seen.sock") // no-op
}

func TestAgentURL(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
		wantErr string
		result  string
	}{
		{
			name:    "trimmed",
			handler: func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, " vsock://830455376:1024\n") },
			want:    "vsock://830455376:1024",
			result:  resultSuccess,
		},
		{
			name:    "status",
			handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no agent", http.StatusNotFound) },
			wantErr: "shim answered 404: no agent",
			result:  resultError,
		},
		{
			name:    "empty",
			handler: func(http.ResponseWriter, *http.Request) {},
			wantErr: "empty answer",
			result:  resultError,
		},
		{
			name:    "too large",
			handler: func(w http.ResponseWriter, _ *http.Request) { w.Write(bytes.Repeat([]byte("v"), 2000)) },
			wantErr: ErrTooLarge.Error(),
			result:  resultTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle("GET /agent-url", tt.handler)
			sock := sockets.Serve(t, mux, nil)
			cfg := DefaultConfig()
			cfg.MaxResponseBytes = 1000
			p := testPool(t, cfg)
			got, err := p.Client(sock).AgentURL(t.Context())
			require.Equal(t, 1.0, p.count(endpointAgentURL, tt.result))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Empty(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("fake shim", func(t *testing.T) {
		fake := startFake(t)
		got, err := testPool(t, DefaultConfig()).Client(fake.Socket()).AgentURL(t.Context())
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(got, "vsock://"), got)
	})
}

func TestStatusErrorMessage(t *testing.T) {
	require.Equal(t, "shim answered 503", (&StatusError{Code: 503}).Error())
	require.Equal(t, "shim answered 500: boom", (&StatusError{Code: 500, Body: "boom\n"}).Error())
	err := error(&StatusError{Code: 502})
	require.True(t, errors.As(err, new(*StatusError)))
}

func BenchmarkMetrics(b *testing.B) {
	fake := startFake(b)
	p := testPool(b, DefaultConfig())
	ctx := context.Background()
	buf, err := p.Metrics(ctx, fake.Socket(), nil)
	require.NoError(b, err)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = p.Metrics(ctx, fake.Socket(), buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestScrapeFormatsAndEncodings(t *testing.T) {
	exposition := fakeshim.ExpositionAt(nil, 1)
	var deflated bytes.Buffer
	fw, err := flate.NewWriter(&deflated, flate.BestSpeed)
	require.NoError(t, err)
	_, _ = fw.Write(exposition)
	require.NoError(t, fw.Close())
	const om = "# TYPE x counter\nx_total 1 # {trace_id=\"a\"} 1\nx_created 1.7e9\n# EOF\n"

	tests := []struct {
		name    string
		set     func(*fakeshim.Shim)
		want    string
		wantCT  string
		wantErr error
	}{
		{name: "text", set: func(*fakeshim.Shim) {}, want: string(exposition), wantCT: "text/plain; version=0.0.4; charset=utf-8"},
		{name: "gzip asked for and decoded", set: func(s *fakeshim.Shim) { s.SetGzip(true) },
			want: string(exposition), wantCT: "text/plain; version=0.0.4; charset=utf-8"},
		{name: "openmetrics content type handed on", set: func(s *fakeshim.Shim) {
			s.SetBody([]byte(om))
			s.SetHeaders(http.Header{"Content-Type": {"application/openmetrics-text; version=1.0.0; charset=utf-8"}})
		}, want: om, wantCT: "application/openmetrics-text; version=1.0.0; charset=utf-8"},
		{name: "no content type", set: func(s *fakeshim.Shim) {
			s.SetHeaders(http.Header{"Content-Type": nil})
		}, want: string(exposition), wantCT: ""},
		{name: "deflate not asked for", set: func(s *fakeshim.Shim) {
			s.SetBody(deflated.Bytes())
			s.SetHeaders(http.Header{"Content-Encoding": {"deflate"}})
		}, wantErr: ErrEncoding},
		{name: "br not asked for", set: func(s *fakeshim.Shim) {
			s.SetHeaders(http.Header{"Content-Encoding": {"br"}})
		}, wantErr: ErrEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPool(t, DefaultConfig())
			fake := startFake(t)
			tt.set(fake)
			out, ct, err := p.Scrape(t.Context(), fake.Socket(), nil)
			require.Equal(t, ScrapeAccept, fake.LastAccept(), "the scrape says what it accepts")
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Equal(t, Printable(err.Error()), err.Error(), "printable error")
				require.Empty(t, out)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(out))
			require.Equal(t, tt.wantCT, ct)
		})
	}
}

func TestStatusErrorBodyPrintable(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("boom\x1f\x8b\x08\x00\xff\xfe\x07"))
	})
	sock := sockets.Serve(t, mux, nil)
	p := testPool(t, DefaultConfig())
	_, _, err := p.Scrape(t.Context(), sock, nil)
	var serr *StatusError
	require.ErrorAs(t, err, &serr)
	require.Equal(t, "boom???????", serr.Body)
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain text": "plain text", "tab\there": "tab?here", "\xff\xfe": "??", "é ü 日本": "é ü 日本", "nul\x00": "nul?",
	} {
		require.Equal(t, want, Printable(in), "%q", in)
	}
}
