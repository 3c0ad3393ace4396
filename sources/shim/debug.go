package shim

import (
	"context"
	"errors"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxDebugExtra caps the time a profile or trace may add to Config.Timeout.
const maxDebugExtra = 10 * time.Minute

// maxDebugRequestBody caps what a POST to /debug/pprof/symbol may send.
const maxDebugRequestBody = 1 << 20

// ServeDebug reverse-proxies r to the shim's debug endpoint path, streaming
// the answer (profiles and traces arrive as they are written). path must be
// /debug/vars, /debug/pprof/ or /debug/pprof/<name> with name made of
// [a-zA-Z0-9_.-] (not "." or ".."); anything else gets 404 and never reaches
// the shim. The query is r's minus the sandbox parameter. The request may
// last Config.Timeout, plus ?seconds= (capped at 10 minutes; pprof's default
// when absent) for profile and trace. An unreachable shim gives 502, a timeout
// before the answer 504, each with a short reason. If the shim breaks off
// mid-answer the response is aborted (http.ErrAbortHandler, as
// httputil.ReverseProxy does) so the client sees a truncated reply, not a
// complete one. Blocks until the answer is sent; concurrency-safe.
func (c *Client) ServeDebug(w http.ResponseWriter, r *http.Request, path string) {
	if !debugPathAllowed(path) {
		http.NotFound(w, r)
		return
	}
	switch {
	case r.Method == http.MethodGet, r.Method == http.MethodHead:
	case r.Method == http.MethodPost && path == "/debug/pprof/symbol":
	default:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	query := r.URL.Query()
	sandboxID := query.Get("sandbox")
	query.Del("sandbox")
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout+debugExtra(path, query))
	defer cancel()
	if path == "/debug/pprof/" && sandboxID != "" {
		ctx = context.WithValue(ctx, indexSandboxKey{}, sandboxID)
	}

	out := r.WithContext(ctx)
	out.URL = &url.URL{Path: path, RawQuery: query.Encode()}
	// Only content negotiation goes to the shim; credentials for
	// kata-monitor's own listener (Authorization, cookies) stay here.
	out.Header = make(http.Header, 4)
	for _, h := range []string{"Accept", "Accept-Encoding", "Content-Type", "User-Agent"} {
		if v := r.Header.Values(h); len(v) > 0 {
			out.Header[h] = v
		}
	}
	if path == "/debug/pprof/" {
		out.Header.Del("Accept-Encoding") // the index is rewritten: plain text, please
	}
	if r.Method == http.MethodPost {
		out.Body = http.MaxBytesReader(w, r.Body, maxDebugRequestBody)
	} else {
		out.Body, out.ContentLength = http.NoBody, 0
	}
	c.proxy.ServeHTTP(w, out)
}

// newProxy builds the client's reverse proxy on its own transport.
func (c *Client) newProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "shim" // placeholder: the transport dials the socket
			pr.Out.Host = "shim"
		},
		Transport:     c.transport,
		FlushInterval: -1, // profiles stream: flush every write
		// Failures are answered to the client and counted; nothing to log.
		ErrorLog: log.New(io.Discard, "", 0),
		ModifyResponse: func(resp *http.Response) error {
			c.m.observe(endpointDebug, nil)
			if id, ok := resp.Request.Context().Value(indexSandboxKey{}).(string); ok {
				return rewriteIndex(resp, id)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			c.m.observe(endpointDebug, err)
			code, reason := http.StatusBadGateway, "shim request failed"
			var operr *net.OpError
			switch {
			case resultOf(err) == resultTimeout:
				code, reason = http.StatusGatewayTimeout, "shim timed out"
			case errors.As(err, &operr) && operr.Op == "dial":
				reason = "shim unreachable"
			}
			http.Error(w, reason, code)
		},
	}
}

// debugPathAllowed reports whether path is a debug endpoint a shim serves.
// The path comes from kata-monitor's own request path, so this is the only
// thing between a client and arbitrary shim URLs.
func debugPathAllowed(path string) bool {
	switch path {
	case "/debug/vars", "/debug/pprof/":
		return true
	}
	name, ok := strings.CutPrefix(path, "/debug/pprof/")
	if !ok || name == "" || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// debugExtra is how long the shim may take on top of Config.Timeout: the
// profile or trace duration, as pprof reads ?seconds=, capped.
func debugExtra(path string, query url.Values) time.Duration {
	var def float64
	switch path {
	case "/debug/pprof/profile":
		def = 30
	case "/debug/pprof/trace":
		def = 1
	default:
		return 0
	}
	secs := def
	if v, err := strconv.ParseFloat(query.Get("seconds"), 64); err == nil && v > 0 && !math.IsInf(v, 0) {
		secs = v
	}
	return min(time.Duration(min(secs, maxDebugExtra.Seconds())*float64(time.Second)), maxDebugExtra)
}
