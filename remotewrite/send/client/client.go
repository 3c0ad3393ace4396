// Package client sends one remote write request to one endpoint and says
// what its answer means: Client.Send POSTs an encoded request with the
// headers of its format and the endpoint's authentication, and returns
// what the receiver wrote or an error the sender acts on (RecoverableError,
// StatusError, UnsupportedError). StatusAction is the status policy (the
// table in docs/remote-write.md) and RefusalReason reads why a receiver
// refused data. Retrying, splitting and counting are package send's.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// maxRetryAfterSeconds bounds a hint, in seconds or as a date, before
// converting it, so a silly value cannot overflow a Duration; the retry
// loop caps it further.
const maxRetryAfterSeconds = 1 << 20

// maxErrBody caps how much of a receiver's error answer we keep for logs.
const maxErrBody = 512

// RecoverableError marks a failure worth retrying: no answer (network
// error, timeout) or a status the policy retries (see Action).
type RecoverableError struct {
	Err error
	// RetryAfter is the receiver's Retry-After hint, 0 when absent.
	RetryAfter time.Duration
}

func (e RecoverableError) Error() string { return e.Err.Error() }
func (e RecoverableError) Unwrap() error { return e.Err }

// StatusError is an answer the sender must act on instead of retrying
// the same request: a refusal of the data (400, 409, 422: split), a
// request too large (413: split) or a 429 with retry_on_http_429 false
// (drop). Action tells which.
type StatusError struct {
	Code    int
	Body    string  // the start of the answer's body, safe to log
	Written Written // the receiver's Written headers, if any
}

func (e StatusError) Error() string {
	return fmt.Sprintf("server returned HTTP status %d: %s", e.Code, e.Body)
}

// Action is what the sender does with one answer. The table in
// docs/remote-write.md ("Status policy") lists the same rows; StatusAction
// is the only place that decides.
type Action int

const (
	ActDone        Action = iota // 2xx: delivered
	ActUnsupported               // 415 to a 2.0 request: fall back to 1.0 (see send's fallBack)
	ActRetry                     // resend the same request after a backoff
	ActRefused                   // the data is refused: split down to the refused series, drop those
	ActTooLarge                  // 413: split, lower the endpoint's request size
	ActDrop                      // 429 with retry_on_http_429: false: drop the request (the user's choice)
)

// StatusAction maps an HTTP status code to the sender's Action.
//
// Only 400, 409 and 422 say something about the data itself (Prometheus
// answers 400 for an out-of-order or duplicate sample anywhere in a
// request, Mimir and Cortex use 400 and 409, some gateways 422), so only
// they lead to a drop, and only after splitting has isolated the refused
// series. Every other status says the endpoint cannot take anything right
// now (401, 403 and 407 until credentials are fixed, 404 until the URL
// is, 408, 425, 429, 5xx) and is retried, since dropping would lose data
// that the receiver would take once fixed. Redirects are never followed
// (see config.CheckRedirect) and retried likewise. 415 to a 2.0 request means the
// receiver does not take that message: the sender falls back to 1.0, as
// the remote write 2.0 specification allows ("Unsupported Request
// Content"); 415 to a 1.0 request is retried like any other answer that
// says nothing about the data.
func StatusAction(code int, retryOn429, v2 bool) Action {
	switch {
	case code/100 == 2:
		return ActDone
	case code == http.StatusUnsupportedMediaType && v2:
		return ActUnsupported
	case code == http.StatusBadRequest, code == http.StatusConflict, code == http.StatusUnprocessableEntity:
		return ActRefused
	case code == http.StatusRequestEntityTooLarge:
		return ActTooLarge
	case code == http.StatusTooManyRequests && !retryOn429:
		return ActDrop
	default:
		return ActRetry
	}
}

// Client POSTs encoded requests to one endpoint. It is safe for
// concurrent use: it holds only immutable settings and a concurrency-safe
// transport.
type Client struct {
	url        string
	hc         *http.Client
	timeout    time.Duration
	headers    map[string]string
	userAgent  string
	retryOn429 bool
	// observe records one attempt: status code ("error" for no answer)
	// and duration. Never nil.
	observe func(code string, d time.Duration)
}

// New returns the Client of the endpoint cfg (defaulted and valid) over
// rt (config.Config.NewRoundTripper). observe is called after every
// attempt with the status code ("error" when nothing answered) and its
// duration.
func New(cfg config.Config, rt http.RoundTripper, userAgent string, observe func(code string, d time.Duration)) *Client {
	return &Client{
		url: cfg.URL,
		hc: &http.Client{
			Transport:     rt,
			CheckRedirect: config.CheckRedirect(cfg.HTTPClientConfig.FollowRedirects),
		},
		timeout:    time.Duration(cfg.RemoteTimeout),
		headers:    cfg.Headers,
		userAgent:  userAgent,
		retryOn429: *cfg.QueueConfig.RetryOnHTTP429,
		observe:    observe,
	}
}

// CloseIdleConnections closes the transport's keep-alive connections
// that no request uses (http.Client.CloseIdleConnections: through
// prometheus/common's round trippers, which pass it on). A queue calls it
// when it stops: a tenant's queue closed for idleness would otherwise
// leave its connections, each with two goroutines, buffers and a file
// descriptor, open until the transport's idle timeout (5 min).
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Response headers of remote write 2.0 ("Required Written Response
// Headers"): how many elements of the request the receiver wrote.
const (
	hdrSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	hdrHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	hdrExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// Written is what a receiver says it wrote of one request.
type Written struct {
	// Known is set when the answer carried at least one of the Written
	// headers; the counts are then exact (a missing header counts 0).
	Known bool
	// Samples is float samples plus histogram samples (this sender sends
	// no histograms or exemplars, so both count as samples written).
	Samples int64
}

// parseWritten reads the Written headers. A value that is not a single
// non-negative 64-bit integer is ignored (the header counts as absent).
func parseWritten(h http.Header) Written {
	var w Written
	for _, k := range []string{hdrSamplesWritten, hdrHistogramsWritten} {
		v := h.Get(k)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			continue
		}
		w.Known, w.Samples = true, w.Samples+n
	}
	if h.Get(hdrExemplarsWritten) != "" {
		w.Known = true
	}
	return w
}

// ErrNoWrittenHeaders is a 2xx answer to a 2.0 request without any Written
// header: a 1.x receiver that decoded the 2.0 message as a 1.0 one (an
// empty request: nothing written). The specification says to treat it as
// 415.
var ErrNoWrittenHeaders = errors.New("2xx without X-Prometheus-Remote-Write-*-Written headers: a remote write 1.0 receiver that ignores Content-Type (nothing was written)")

// UnsupportedError asks the sender to fall back to 1.0: a 415 to a 2.0
// request, or ErrNoWrittenHeaders.
type UnsupportedError struct{ Err error }

func (e UnsupportedError) Error() string { return e.Err.Error() }
func (e UnsupportedError) Unwrap() error { return e.Err }

// Send sends one encoded request of format f, with the headers f needs
// (Content-Encoding, Content-Type, X-Prometheus-Remote-Write-Version) and
// User-Agent. It returns what the receiver says it wrote and nil on 2xx,
// an UnsupportedError when a 2.0 request is refused as such (415, or 2xx
// without Written headers), a RecoverableError when StatusAction says
// retry (or nothing answered), a StatusError for the other actions,
// or an error wrapping parent's error when parent ended.
func (c *Client) Send(parent context.Context, data []byte, f codec.Format) (Written, error) {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(data))
	if err != nil {
		// Only a malformed URL gets here, which Validate prevents.
		return Written{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Encoding", f.Encoding())
	req.Header.Set("Content-Type", f.ContentType())
	req.Header.Set("X-Prometheus-Remote-Write-Version", f.Version())
	req.Header.Set("User-Agent", c.userAgent)
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.observe("error", time.Since(start))
		if perr := parent.Err(); perr != nil {
			// Our caller gave up (shutdown); not the receiver's fault.
			return Written{}, fmt.Errorf("post: %w", perr)
		}
		return Written{}, RecoverableError{Err: fmt.Errorf("post: %w", err)}
	}
	defer resp.Body.Close()
	// Read a little of the body for error messages, then drain a bounded
	// amount so the connection can be reused.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	c.observe(strconv.Itoa(resp.StatusCode), time.Since(start))

	return answer(resp, body, c.retryOn429, f)
}

// answer interprets a receiver's answer to a request of format f, whose
// body starts with body: see Send.
func answer(resp *http.Response, body []byte, retryOn429 bool, f codec.Format) (Written, error) {
	code := resp.StatusCode
	w := parseWritten(resp.Header)
	act := StatusAction(code, retryOn429, f.V2())
	if act == ActRefused && wrongPath(body) {
		// Not a refusal of the data: the URL or headers are wrong. Keep
		// the data in the WAL until the config is fixed, not drop it.
		act = ActRetry
	}
	switch act {
	case ActDone:
		if htmlAnswer(resp.Header) {
			// No remote-write receiver answers a write with a web page:
			// a proxy's login or error page, or a url that is a UI.
			// Counting it as sent would lose the data silently.
			return w, RecoverableError{Err: StatusError{Code: code,
				Body: "an HTML page, not a remote-write answer (a proxy's login or error page, or a url that is not the receiver's write path?): " + sanitize(body)}}
		}
		if f.V2() && !w.Known {
			return w, UnsupportedError{Err: ErrNoWrittenHeaders}
		}
		return w, nil
	case ActUnsupported:
		return w, UnsupportedError{Err: StatusError{Code: code, Body: sanitize(body)}}
	case ActRetry:
		herr := StatusError{Code: code, Body: sanitize(body)}
		if code/100 == 3 {
			// A misconfigured URL behind a redirect: keep the data in the
			// WAL until the config is fixed rather than drop it.
			herr.Body = "redirect to " + resp.Header.Get("Location") + " not followed"
		}
		return w, RecoverableError{Err: herr, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	default:
		return w, StatusError{Code: code, Body: sanitize(body), Written: w}
	}
}

// wrongRequestAnswers are fragments of 400 answers that are about the
// request's URL or headers, not its data, so splitting and dropping would
// lose everything until the config is fixed:
//   - VictoriaMetrics (lib/httpserver), any path it does not serve (a url
//     with a typo, or without /api/v1/write): "unsupported path requested";
//   - Go's net/http server (Prometheus, Thanos, Mimir, VictoriaMetrics with
//     TLS on) given an http:// url: "Client sent an HTTP request to an
//     HTTPS server";
//   - nginx in front of a receiver: "The plain HTTP request was sent to
//     HTTPS port", and "Request Header Or Cookie Too Large" (e.g. a huge
//     credentials file).
var wrongRequestAnswers = []string{
	"unsupported path requested",
	"client sent an http request to an https server",
	"the plain http request was sent to https port",
	"request header or cookie too large",
}

// wrongPath reports whether a 400 answer's body says the request's URL or
// headers are wrong, not its data (case-insensitive).
func wrongPath(body []byte) bool {
	b := bytes.ToLower(body)
	for _, f := range wrongRequestAnswers {
		if bytes.Contains(b, []byte(f)) {
			return true
		}
	}
	return false
}

// htmlAnswer reports whether an answer's Content-Type is text/html.
func htmlAnswer(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "text/html"
}

// Store is Send without the Written counts.
func (c *Client) Store(ctx context.Context, data []byte, f codec.Format) error {
	_, err := c.Send(ctx, data, f)
	return err
}

// sanitize makes a receiver's answer safe for one log field.
func sanitize(b []byte) string {
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP date.
// It returns 0 when absent or unparsable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		s = min(s, maxRetryAfterSeconds)
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfterSeconds*time.Second)
		}
	}
	return 0
}
