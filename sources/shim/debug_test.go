package shim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/kata-containers/kata-monitor/test/daemon"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

// debugFront serves ServeDebug for socket on an httptest server, the way
// httpapi mounts it: the debug path is the request path.
func debugFront(t *testing.T, p *Pool, socket string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Client(socket).ServeDebug(w, r, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fetch does a request and returns the response with its body read.
func fetch(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Basic c2VjcmV0OnNlY3JldA==")
	resp, body, err := daemon.Do(req)
	require.NoError(t, err)
	return resp, body
}

func TestServeDebugFakeShim(t *testing.T) {
	fake := startFake(t)
	p := testPool(t, DefaultConfig())
	front := debugFront(t, p, fake.Socket())
	tests := []struct {
		path     string
		wantCode int
		contains string
	}{
		{path: "/debug/vars", wantCode: 200, contains: `"memstats"`},
		{path: "/debug/vars?sandbox=abc", wantCode: 200, contains: `"cmdline"`},
		{path: "/debug/pprof/", wantCode: 200, contains: `<a href="heap?debug=1">`},
		{path: "/debug/pprof/cmdline", wantCode: 200, contains: "containerd-shim-kata-v2\x00"},
		{path: "/debug/pprof/heap?debug=1&sandbox=abc", wantCode: 200, contains: "heap"},
		{path: "/debug/pprof/symbol", wantCode: 200, contains: "num_symbols"},
		{path: "/debug/pprof/profile?seconds=1&sandbox=abc", wantCode: 200, contains: "chunk 1\n"},
		{path: "/debug/pprof/trace?seconds=1", wantCode: 200, contains: "chunk 0\n"},
		{path: "/debug/pprof/nosuchprofile", wantCode: 404}, // the shim's 404, passed on
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := fetch(t, http.MethodGet, front.URL+tt.path)
			require.Equal(t, tt.wantCode, resp.StatusCode, body)
			require.Contains(t, body, tt.contains)
			if strings.HasPrefix(tt.path, "/debug/pprof/profile") {
				require.EqualValues(t, -1, resp.ContentLength, "streamed, not buffered")
			}
		})
	}
	require.Equal(t, float64(len(tests)), p.count(endpointDebug, resultSuccess))
	require.Zero(t, fake.Scrapes())
}

func TestServeDebugStreams(t *testing.T) {
	fake := startFake(t)
	p := testPool(t, DefaultConfig())
	front := debugFront(t, p, fake.Socket())

	// A 10-minute profile: the first chunk must arrive long before the end.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/debug/pprof/profile?seconds=600", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	first := make([]byte, len("chunk 0\n"))
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err, "the first chunk is flushed through the proxy")
	require.Equal(t, "chunk 0\n", string(first))
}

func TestServeDebugRejects(t *testing.T) {
	fake := startFake(t)
	p := testPool(t, DefaultConfig())
	tests := []struct {
		method   string
		path     string
		wantCode int
	}{
		{method: "GET", path: "/metrics", wantCode: 404},
		{method: "GET", path: "/agent-url", wantCode: 404},
		{method: "GET", path: "/debug/pprof", wantCode: 404},
		{method: "GET", path: "/debug/pprof/..", wantCode: 404},
		{method: "GET", path: "/debug/pprof/.", wantCode: 404},
		{method: "GET", path: "/debug/pprof/../../metrics", wantCode: 404},
		{method: "GET", path: "/debug/pprof/heap/x", wantCode: 404},
		{method: "GET", path: "/debug/pprof/he ap", wantCode: 404},
		{method: "GET", path: "/debug/pprof/heap?x", wantCode: 404},
		{method: "GET", path: "/debug/varsx", wantCode: 404},
		{method: "GET", path: "/debug/vars/", wantCode: 404},
		{method: "GET", path: "", wantCode: 404},
		{method: "POST", path: "/debug/vars", wantCode: 405},
		{method: "DELETE", path: "/debug/pprof/heap", wantCode: 405},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(tt.method, "/x", nil)
			p.Client(fake.Socket()).ServeDebug(w, r, tt.path)
			require.Equal(t, tt.wantCode, w.Code)
		})
	}
	require.Zero(t, fake.Scrapes(), "nothing reached the shim")
	require.Zero(t, p.count(endpointDebug, resultSuccess))
}

func TestServeDebugRewrites(t *testing.T) {
	type seen struct {
		uri, host, auth, accept string
	}
	got := make(chan seen, 1)
	sock := sockets.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{uri: r.RequestURI, host: r.Host, auth: r.Header.Get("Authorization"), accept: r.Header.Get("Accept")}
		io.WriteString(w, "ok")
	}), nil)
	p := testPool(t, DefaultConfig())
	front := debugFront(t, p, sock)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/debug/pprof/goroutine?debug=2&sandbox=abc", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Basic c2VjcmV0OnNlY3JldA==")
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, seen{uri: "/debug/pprof/goroutine?debug=2", host: "shim", accept: "text/plain"}, <-got,
		"sandbox dropped, credentials kept out")
}

func TestServeDebugFailures(t *testing.T) {
	hung := sockets.Serve(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}), nil)
	tests := []struct {
		name     string
		socket   string
		path     string
		wantCode int
		wantBody string
		result   string
	}{
		{
			name:     "unreachable",
			socket:   "/nonexistent/shim-monitor.sock",
			path:     "/debug/vars",
			wantCode: http.StatusBadGateway,
			wantBody: "shim unreachable\n",
			result:   resultError,
		},
		{
			name:     "timeout",
			socket:   hung,
			path:     "/debug/vars",
			wantCode: http.StatusGatewayTimeout,
			wantBody: "shim timed out\n",
			result:   resultTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Timeout = 200 * time.Millisecond
			p := testPool(t, cfg)
			front := debugFront(t, p, tt.socket)
			resp, body := fetch(t, http.MethodGet, front.URL+tt.path)
			require.Equal(t, tt.wantCode, resp.StatusCode)
			require.Equal(t, tt.wantBody, body)
			require.Equal(t, 1.0, p.count(endpointDebug, tt.result))
		})
	}
}

func TestDebugExtra(t *testing.T) {
	tests := []struct {
		path  string
		query string
		want  time.Duration
	}{
		{path: "/debug/vars", query: "seconds=100", want: 0},
		{path: "/debug/pprof/heap", query: "seconds=100", want: 0},
		{path: "/debug/pprof/profile", query: "", want: 30 * time.Second},
		{path: "/debug/pprof/profile", query: "seconds=5", want: 5 * time.Second},
		{path: "/debug/pprof/profile", query: "seconds=-5", want: 30 * time.Second},
		{path: "/debug/pprof/profile", query: "seconds=x", want: 30 * time.Second},
		{path: "/debug/pprof/profile", query: "seconds=1e300", want: maxDebugExtra},
		{path: "/debug/pprof/profile", query: "seconds=NaN", want: 30 * time.Second},
		{path: "/debug/pprof/trace", query: "", want: time.Second},
		{path: "/debug/pprof/trace", query: "seconds=0.5", want: 500 * time.Millisecond},
		{path: "/debug/pprof/trace", query: "seconds=Inf", want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.path+"?"+tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			require.NoError(t, err)
			require.Equal(t, tt.want, debugExtra(tt.path, q))
		})
	}
}

func FuzzDebugPathAllowed(f *testing.F) {
	for _, s := range []string{"/debug/vars", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/..", "/debug/pprof/a/b", "/debug/pprof/%2e%2e", "/metrics", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !debugPathAllowed(p) {
			return
		}
		if p == "/debug/pprof/" {
			return
		}
		require.Equal(t, p, path.Clean(p), "allowed paths are clean")
		require.True(t, p == "/debug/vars" || path.Dir(p) == "/debug/pprof", p)
		require.NotContainsf(t, p, "%", "no escapes")
		require.NotContainsf(t, p, "?", "no query")
	})
}

func FuzzDebugExtra(f *testing.F) {
	for _, s := range []string{"seconds=1", "seconds=-1", "seconds=1e308", "seconds=NaN", "seconds=0x10", ""} {
		f.Add("/debug/pprof/profile", s)
	}
	f.Add("/debug/pprof/trace", "seconds=0.001")
	f.Fuzz(func(t *testing.T, p, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		d := debugExtra(p, q)
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, maxDebugExtra)
	})
}

func TestRewriteLinks(t *testing.T) {
	const id = `a&b"<c>`
	tests := []struct{ in, want string }{
		{in: `<a href="heap?debug=1">heap</a>`, want: `<a href="heap?debug=1&amp;sandbox=a%26b%22%3Cc%3E">heap</a>`},
		{in: `<a href="profile">p</a>`, want: `<a href="profile?sandbox=a%26b%22%3Cc%3E">p</a>`},
		{in: `<a href="/debug/pprof/goroutine?debug=2">g</a>`, want: `<a href="/debug/pprof/goroutine?debug=2&amp;sandbox=a%26b%22%3Cc%3E">g</a>`},
		{in: `<a href="https://pkg.go.dev/net/http/pprof">doc</a>`, want: `<a href="https://pkg.go.dev/net/http/pprof">doc</a>`},
		{in: `<a href="#top">top</a>`, want: `<a href="#top">top</a>`},
		{in: `<p title="x">text &amp; more</p><br>`, want: `<p title="x">text &amp; more</p><br>`},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, string(rewriteLinks([]byte(tt.in), id)), tt.in)
	}
}

// FuzzRewriteLinks: whatever the shim's index page holds, the rewrite
// never panics and every link to this host in its output carries the
// sandbox, exactly.
func FuzzRewriteLinks(f *testing.F) {
	for _, seed := range []string{
		`<a href="heap?debug=1">heap</a>`,
		`<html><body><a href="/debug/pprof/goroutine?debug=2">g</a><br><a href='x?a=%zz'>bad</a></body></html>`,
		`<a href="https://example.com/x">doc</a><a href="#top">t</a><a href="?sandbox=other">o</a>`,
		`<a href="a&amp;b">x</a><script>"<a href=\"y\">"</script>`,
	} {
		f.Add([]byte(seed))
	}
	const id = `a&b"<c>`
	f.Fuzz(func(t *testing.T, page []byte) {
		out := rewriteLinks(page, id)
		z := html.NewTokenizer(bytes.NewReader(out))
		for tt := z.Next(); tt != html.ErrorToken; tt = z.Next() {
			tok := z.Token()
			if tok.Data != "a" || (tt != html.StartTagToken && tt != html.SelfClosingTagToken) {
				continue
			}
			for _, a := range tok.Attr {
				if a.Namespace != "" || !strings.EqualFold(a.Key, "href") {
					continue
				}
				u, err := url.Parse(a.Val)
				if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || (u.Path == "" && u.RawQuery == "") {
					continue
				}
				require.Equal(t, id, u.Query().Get("sandbox"), "href %q in %q", a.Val, out)
			}
		}
	})
}
