package httpapi

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/kata-containers/kata-monitor/sources/shim"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
)

// poolShims serves real shim clients.
type poolShims struct{ p *shim.Pool }

func (s poolShims) Shim(socket string) Shim { return s.p.Client(socket) }

// realShimEnv is an API whose sandbox idA is a fake shim on a real socket.
func realShimEnv(t *testing.T) (*testEnv, *fakeshim.Shim) {
	t.Helper()
	dir, err := os.MkdirTemp("", "kmpt")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "shim-monitor.sock")
	fake, err := fakeshim.Start(sock, fakeshim.Options{Exposition: []byte(shimExposition)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = fake.Close() })
	fake.SetBody([]byte(shimExposition)) // fixed values
	pool, err := shim.NewPool(shim.DefaultConfig(), prometheus.NewRegistry())
	require.NoError(t, err)
	env := newTestEnv(t, DefaultConfig(), func(d *Deps) {
		d.Shims = poolShims{pool}
		d.Sandboxes = &fakeSandboxes{byID: map[string]sandbox.Sandbox{idA: {ID: idA, Root: dir, Socket: sock}}}
	})
	return env, fake
}

// TestSandboxPassthroughHeaders: /metrics?sandbox= answers the body the
// shim served with headers that describe it: the shim's Content-Type, and
// a Content-Encoding only for the compression applied here.
func TestSandboxPassthroughHeaders(t *testing.T) {
	const om = "# TYPE x counter\nx_total 1 # {trace_id=\"a\"} 1\n# EOF\n"
	var deflated bytes.Buffer
	fw, _ := flate.NewWriter(&deflated, flate.BestSpeed)
	_, _ = fw.Write([]byte(shimExposition))
	_ = fw.Close()
	tests := []struct {
		name       string
		set        func(*fakeshim.Shim)
		clientGzip bool
		wantCode   int
		wantCT     string
		wantBody   string
	}{
		{name: "text", set: func(*fakeshim.Shim) {}, wantCode: 200,
			wantCT: "text/plain; version=0.0.4; charset=utf-8", wantBody: shimExposition},
		{name: "shim gzip, client plain", set: func(s *fakeshim.Shim) { s.SetGzip(true) }, wantCode: 200,
			wantCT: "text/plain; version=0.0.4; charset=utf-8", wantBody: shimExposition},
		{name: "shim gzip, client gzip", set: func(s *fakeshim.Shim) { s.SetGzip(true) }, clientGzip: true, wantCode: 200,
			wantCT: "text/plain; version=0.0.4; charset=utf-8", wantBody: shimExposition},
		{name: "openmetrics", set: func(s *fakeshim.Shim) {
			s.SetBody([]byte(om))
			s.SetHeaders(http.Header{"Content-Type": {"application/openmetrics-text; version=1.0.0; charset=utf-8"}})
		}, clientGzip: true, wantCode: 200, wantCT: "application/openmetrics-text; version=1.0.0; charset=utf-8", wantBody: om},
		{name: "no content type", set: func(s *fakeshim.Shim) { s.SetHeaders(http.Header{"Content-Type": nil}) },
			wantCode: 200, wantCT: "text/plain; version=0.0.4", wantBody: shimExposition},
		{name: "deflate not asked for", set: func(s *fakeshim.Shim) {
			s.SetBody(deflated.Bytes())
			s.SetHeaders(http.Header{"Content-Encoding": {"deflate"}})
		}, wantCode: http.StatusBadGateway, wantCT: "text/plain; charset=utf-8", wantBody: "shim metrics unavailable\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, fake := realShimEnv(t)
			tt.set(fake)
			hdr := http.Header{}
			if tt.clientGzip {
				hdr.Set("Accept-Encoding", "gzip")
			}
			w := do(t, env.api.Handler(), http.MethodGet, "/metrics?sandbox="+idA, hdr)
			require.Equal(t, tt.wantCode, w.Code, w.Body.String())
			require.Equal(t, tt.wantCT, w.Header().Get("Content-Type"))
			body := w.Body.Bytes()
			if tt.clientGzip && tt.wantCode == 200 {
				require.Equal(t, "gzip", w.Header().Get("Content-Encoding"))
				zr, err := gzip.NewReader(bytes.NewReader(body))
				require.NoError(t, err)
				body, err = io.ReadAll(zr)
				require.NoError(t, err)
			} else {
				require.Empty(t, w.Header().Get("Content-Encoding"))
			}
			require.Equal(t, tt.wantBody, string(body))
		})
	}
}

// TestPprofIndexLinksWork follows every link of the proxied pprof index:
// each carries the sandbox and answers 200 from the shim.
func TestPprofIndexLinksWork(t *testing.T) {
	env, _ := realShimEnv(t)
	srv := httptest.NewServer(env.api.Handler())
	t.Cleanup(srv.Close)
	base, err := url.Parse(srv.URL + "/debug/pprof/?sandbox=" + url.QueryEscape(idA))
	require.NoError(t, err)
	resp, err := http.Get(base.String())
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, string(page))

	var links []string
	z := html.NewTokenizer(bytes.NewReader(page))
	for tt := z.Next(); tt != html.ErrorToken; tt = z.Next() {
		if tok := z.Token(); tok.Data == "a" {
			for _, a := range tok.Attr {
				if a.Key == "href" {
					links = append(links, a.Val)
				}
			}
		}
	}
	require.GreaterOrEqual(t, len(links), 9, string(page))
	for _, l := range links {
		ref, err := url.Parse(l)
		require.NoError(t, err)
		u := base.ResolveReference(ref)
		require.Equal(t, idA, u.Query().Get("sandbox"), l)
		t.Run(u.Path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			first := make([]byte, 1)
			_, err = io.ReadFull(resp.Body, first) // profile and trace stream: the first byte will do
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode, "%s", u)
		})
	}
}
