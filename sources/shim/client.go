// Package shim talks HTTP to one Kata shim's monitor socket
// (<root>/<id>/shim-monitor.sock), as upstream kata-monitor does: it fetches
// /metrics and /agent-url and reverse-proxies the debug endpoints. Every
// request is bounded in time and, for the bodies kata-monitor buffers, in
// size, so one sick shim cannot stall or bloat a scrape round.
package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrTooLarge is wrapped by errors for bodies over Config.MaxResponseBytes.
var ErrTooLarge = errors.New("shim response too large")

// maxStatusBody caps StatusError.Body.
const maxStatusBody = 512

// StatusError is returned when a shim answers with a status other than 200.
// Body is the start of the answer (at most 512 bytes), for the log line.
type StatusError struct {
	// Code is the HTTP status the shim answered.
	Code int
	// Body is the start of the answer, valid UTF-8.
	Body string
}

// Error implements error.
func (e *StatusError) Error() string {
	body := strings.TrimSpace(e.Body)
	if body == "" {
		return fmt.Sprintf("shim answered %d", e.Code)
	}
	return fmt.Sprintf("shim answered %d: %s", e.Code, body)
}

// Client talks to one shim's monitor socket over keep-alive connections. It
// is concurrency-safe. Get one from Pool.Client; Pool.Forget closes its idle
// connections.
type Client struct {
	socket    string
	cfg       Config
	transport *http.Transport
	http      *http.Client
	proxy     *httputil.ReverseProxy
	m         *metrics
	// lean serves get (scrapes, /agent-url) without the transport
	// (lean.go); scrapeReq is the scrape's request.
	lean      leanPool
	scrapeReq []byte
}

// newClient builds a client for socket; it connects lazily.
func newClient(socket string, cfg Config, m *metrics) *Client {
	dialer := &net.Dialer{Timeout: cfg.Timeout}
	tr := &http.Transport{
		// The URL host is a placeholder: every connection goes to socket.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		},
		Proxy:                  nil, // never route a local socket through $HTTP_PROXY
		MaxIdleConns:           2,
		MaxIdleConnsPerHost:    2, // one for scrapes, one for a concurrent debug request
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	c := &Client{
		socket:    socket,
		cfg:       cfg,
		transport: tr,
		http: &http.Client{
			Transport: tr,
			// A shim never redirects; if one does, report the answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		m:         m,
		lean:      leanPool{socket: socket},
		scrapeReq: requestBytes("/metrics", ScrapeAccept),
	}
	c.proxy = c.newProxy()
	return c
}

// Socket returns the monitor socket path this client dials.
func (c *Client) Socket() string { return c.socket }

// ScrapeAccept is the Accept header of a scrape, modelled on Prometheus's
// scrape (scrape/scrape.go, acceptHeader): the text format, first in its
// UTF-8 form (version 1.0.0 with escaping=allow-utf-8, so a shim built with a
// newer client serves its names unescaped), then 0.0.4, then OpenMetrics.
// Text comes first because it is what upstream kata-monitor reads and
// /metrics?sandbox= passes through.
const ScrapeAccept = "text/plain;version=1.0.0;escaping=allow-utf-8;q=1," +
	"text/plain;version=0.0.4;q=0.9," +
	"application/openmetrics-text;version=1.0.0;q=0.5," +
	"application/openmetrics-text;version=0.0.1;q=0.4," +
	"*/*;q=0.1"

// ErrEncoding is wrapped by errors for answers in a Content-Encoding the
// scrape did not ask for (the scrape asks for gzip only, and decodes it).
var ErrEncoding = errors.New("unrequested content encoding")

// Metrics is Scrape without the content type.
func (c *Client) Metrics(ctx context.Context, dst []byte) ([]byte, error) {
	out, _, err := c.Scrape(ctx, dst)
	return out, err
}

// Scrape fetches the shim's /metrics exposition, appending it to dst[:0]
// so the caller can reuse one buffer per shim across rounds, and returns it
// with the Content-Type the shim sent ("" when none), which says how to
// parse it. The request sends ScrapeAccept and Accept-Encoding gzip; a gzip
// answer is decoded, any other Content-Encoding is an error wrapping
// ErrEncoding (never binary bytes handed on as text). It blocks for at most
// Config.Timeout (less if ctx ends first). A status other than 200 returns
// a *StatusError; a body over Config.MaxResponseBytes returns an error
// wrapping ErrTooLarge, having read at most one byte more. On error the
// returned slice is empty but keeps dst's (possibly grown) storage.
func (c *Client) Scrape(ctx context.Context, dst []byte) ([]byte, string, error) {
	out, ct, err := c.get(ctx, "/metrics", ScrapeAccept, dst)
	c.m.observe(endpointMetrics, err)
	return out, ct, err
}

// AgentURL fetches /agent-url: the address of the Kata agent in the guest
// (e.g. "vsock://830455376:1024"), trimmed. Bounded like Metrics.
func (c *Client) AgentURL(ctx context.Context) (string, error) {
	b, _, err := c.get(ctx, "/agent-url", "", nil)
	if err == nil && len(strings.TrimSpace(string(b))) == 0 {
		err = errors.New("get /agent-url: empty answer")
	}
	c.m.observe(endpointAgentURL, err)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// get fetches path within Config.Timeout (or ctx's deadline, if earlier)
// and appends a body of at most Config.MaxResponseBytes to dst[:0]; it
// returns the answer's Content-Type. It asks for gzip and decodes it; any
// other encoding on the answer was not asked for. It goes over the
// client's own keep-alive connections (lean.go), not net/http's
// Transport.
func (c *Client) get(ctx context.Context, path, accept string, dst []byte) ([]byte, string, error) {
	deadline := time.Now().Add(c.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	req := c.scrapeReq
	if path != "/metrics" || accept != ScrapeAccept {
		req = requestBytes(path, accept)
	}
	a, err := c.lean.roundTrip(ctx, req, deadline)
	if err != nil {
		return dst[:0], "", fmt.Errorf("get %s: %w", path, timeoutError(ctx, err))
	}
	limit := c.cfg.MaxResponseBytes
	if a.length > limit {
		a.finish(false)
		return dst[:0], "", fmt.Errorf("get %s: body of %d bytes over %d: %w", path, a.length, limit, ErrTooLarge)
	}
	out, err := readCapped(a.body, dst[:0], limit, a.length)
	a.finish(err == nil)
	if err != nil {
		return out[:0], "", fmt.Errorf("get %s: %w", path, timeoutError(ctx, err))
	}
	return out, a.ctype, nil
}

// timeoutError returns ctx's error when ctx ended, and
// context.DeadlineExceeded when the connection's deadline passed, so a
// timeout reads the same whichever deadline was first; else err.
func timeoutError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

// Printable returns s as valid UTF-8 with every non-printable character
// (control bytes, invalid sequences) replaced by '?': what a shim sends
// ends up in logs and on the /sandboxes page, never as raw binary.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || (!unicode.IsPrint(r) && r != ' ') {
			return '?'
		}
		return r
	}, s)
}

// readCapped appends r to dst until EOF, failing with ErrTooLarge as soon as
// more than limit bytes arrived (it reads at most limit+1). size, when
// known (>= 0), sizes the buffer up front.
func readCapped(r io.Reader, dst []byte, limit, size int64) ([]byte, error) {
	if size >= 0 && int64(cap(dst)-len(dst)) < size+1 {
		// +1 so the final Read that sees EOF does not force a regrow.
		dst = append(make([]byte, 0, int64(len(dst))+size+1), dst...)
	}
	n := limit + 1
	if n <= 0 { // limit is math.MaxInt64
		n = limit
	}
	lr := io.LimitReader(r, n)
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)] // let append pick the growth
		}
		n, err := lr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if int64(len(dst)) > limit {
			return dst, fmt.Errorf("body over %d bytes: %w", limit, ErrTooLarge)
		}
		if errors.Is(err, io.EOF) {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// unwrapURLError drops *url.Error's `Get "http://shim/metrics"` prefix,
// which names a placeholder host; the dial error already names the socket.
func unwrapURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
