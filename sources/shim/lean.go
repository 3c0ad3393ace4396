package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
)

// The scrape path (get) does not go through net/http's Transport: a
// Transport runs two goroutines per connection and hands every request and
// answer between them over channels, which cost as much CPU as reading the
// 90 KiB answer itself at 200 shims a round (docs/benchmarks.md, "Push
// cost, session 5"). A GET on a shim's socket needs none of it: the
// request is a few fixed bytes written by the caller's goroutine, and the
// answer is read there with net/http's own HTTP/1.1 response parser
// (http.ReadResponse: status line, headers, Content-Length, chunked
// bodies and trailers, Connection: close), so the protocol handling stays
// the standard library's. Time is bounded by the connection's deadline
// (the earlier of ctx's and Config.Timeout), and a cancelled ctx ends a
// blocked read at once (context.AfterFunc moves the deadline). A
// connection is reused only after its answer was read to the end and the
// shim did not ask to close it, as Go's transport does; a request that
// fails on a reused connection before any byte of the answer arrived (the
// shim closed it while idle) is sent again once on a new connection, as
// Go's transport does for a GET. The debug proxy keeps the Transport.

// maxIdleConns is how many idle connections a client keeps per socket: one
// for scrapes, one for a concurrent /metrics?sandbox= or /agent-url.
const maxIdleConns = 2

// idleTimeout closes connections idle for longer (net/http's
// IdleConnTimeout default).
const idleTimeout = 90 * time.Second

// maxHeaderBytes bounds an answer's status line and headers (as the
// Transport's MaxResponseHeaderBytes did).
const maxHeaderBytes = 64 << 10

// errHeaderTooLarge is returned for answers whose headers pass
// maxHeaderBytes.
var errHeaderTooLarge = fmt.Errorf("response headers over %d bytes", maxHeaderBytes)

// leanConn is one keep-alive connection to a shim's socket.
type leanConn struct {
	nc   net.Conn
	lr   io.LimitedReader // bounds the header bytes read; nc below
	br   *bufio.Reader    // over lr
	used time.Time        // when it went idle
	// rc and peek serve quiet (nil rc: not a socket, never checked).
	rc        syscall.RawConn
	peek      func(fd uintptr) bool
	peekQuiet bool
}

// leanPool is a Client's idle connections and gzip readers.
type leanPool struct {
	socket string

	mu     sync.Mutex
	idle   []*leanConn
	closed bool // Forget ran: connections are closed, not kept

	gz sync.Pool // *gzip.Reader
}

// requestBytes is the HTTP/1.1 request for path: the Host is a
// placeholder (the socket is the address), the User-Agent is Go's
// client's, Accept-Encoding gzip as Go's transport asks for it.
func requestBytes(path, accept string) []byte {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: shim\r\nUser-Agent: Go-http-client/1.1\r\n")
	if accept != "" {
		b.WriteString("Accept: " + accept + "\r\n")
	}
	b.WriteString("Accept-Encoding: gzip\r\n\r\n")
	return []byte(b.String())
}

// getRequest is the request http.ReadResponse pairs the answer with (it
// reads only the method).
var getRequest = &http.Request{Method: http.MethodGet}

// take returns an idle connection (nil if none), closing those idle too
// long and those with something to read (quiet).
func (p *leanPool) take(now time.Time) *leanConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(c.used) < idleTimeout && c.quiet() {
			return c
		}
		_ = c.nc.Close()
	}
	return nil
}

// quiet reports whether the idle connection c has nothing to read: no
// bytes left in its buffer or its socket, and no end of file. Bytes there
// were sent after the answer's end, unasked (a Content-Length shorter than
// the body, a second answer to one request): on a reused connection they
// would be read as the next request's answer, so the next scrape would
// fail, or return the earlier answer's body as its own. Go's transport
// closes such a connection too ("Unsolicited response received on idle
// HTTP channel"); so does a connection the shim closed, instead of
// failing a write and retrying. One non-blocking peek (recv with MSG_PEEK
// and MSG_DONTWAIT) per reuse.
func (c *leanConn) quiet() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.rc == nil {
		return true
	}
	c.peekQuiet = false
	return c.rc.Read(c.peek) == nil && c.peekQuiet
}

// peekFunc is c's non-blocking peek for quiet, built once per connection
// (no allocation per reuse): it sets c.peekQuiet when the socket has
// nothing to read.
func (c *leanConn) peekFunc() func(fd uintptr) bool {
	var b [1]byte
	return func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		c.peekQuiet = errors.Is(err, syscall.EAGAIN)
		return true // never wait for the socket to become readable
	}
}

// put keeps c for the next request, or closes it when enough are idle or
// the pool was closed.
func (p *leanPool) put(c *leanConn, now time.Time) {
	c.used = now
	p.mu.Lock()
	if !p.closed && len(p.idle) < maxIdleConns {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		_ = c.nc.Close()
	}
}

// close closes the idle connections; later ones are closed when their
// request ends.
func (p *leanPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
}

func (p *leanPool) dial(ctx context.Context, deadline time.Time) (*leanConn, error) {
	d := net.Dialer{Deadline: deadline}
	nc, err := d.DialContext(ctx, "unix", p.socket)
	if err != nil {
		return nil, err
	}
	c := &leanConn{nc: nc}
	c.lr.R = nc
	if sc, ok := nc.(syscall.Conn); ok {
		if c.rc, err = sc.SyscallConn(); err != nil {
			_ = nc.Close()
			return nil, err
		}
		c.peek = c.peekFunc()
	}
	// 4 KiB, as net/http's: a body is read straight into the caller's
	// buffer, which is larger.
	c.br = bufio.NewReaderSize(&c.lr, 4<<10)
	return c, nil
}

// leanAnswer is a 200 answer being read: its body, Content-Type and
// Content-Length (-1: unknown, or compressed), and finish, which must run
// once the body was read (ok: to its end without error).
type leanAnswer struct {
	body   io.Reader
	ctype  string
	length int64
	finish func(ok bool)
}

// roundTrip sends req on an idle or new connection and reads the answer's
// head, all before deadline; a cancelled ctx ends it early. A status other
// than 200 and an unrequested encoding are returned as errors (the
// connection closed).
func (p *leanPool) roundTrip(ctx context.Context, req []byte, deadline time.Time) (*leanAnswer, error) {
	for attempt := 0; ; attempt++ {
		c := p.take(time.Now())
		reused := c != nil
		if c == nil {
			var err error
			if c, err = p.dial(ctx, deadline); err != nil {
				return nil, err
			}
		}
		// A cancelled ctx (shutdown) ends a blocked write or read at
		// once, until the answer is read (finish).
		stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
		resp, err := c.exchange(req, deadline)
		if err != nil {
			stop()
			_ = c.nc.Close()
			// The shim closed the connection while it was idle: no
			// answer came, so the GET goes again, once, on a new one.
			if reused && attempt == 0 && isStale(err) && ctx.Err() == nil && time.Now().Before(deadline) {
				continue
			}
			return nil, err
		}
		a, err := p.answer(c, resp, stop)
		if err != nil {
			stop()
		}
		return a, err
	}
}

// isStale reports whether err is how a request on a connection the peer
// closed fails: end of file before an answer, a reset or a broken pipe.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// exchange writes req and reads the answer's head (1xx answers skipped),
// leaving the deadline on the connection for the body.
func (c *leanConn) exchange(req []byte, deadline time.Time) (*http.Response, error) {
	if err := c.nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := c.nc.Write(req); err != nil {
		return nil, err
	}
	for range 5 {
		c.lr.N = maxHeaderBytes
		resp, err := http.ReadResponse(c.br, getRequest)
		spent := c.lr.N <= 0
		c.lr.N = math.MaxInt64
		if err != nil {
			if spent {
				return nil, errHeaderTooLarge
			}
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		// 100 Continue, 103 Early Hints: the answer follows.
	}
	return nil, errors.New("too many informational answers")
}

// answer checks resp's status and encoding and wraps its body; finish
// calls stop (which ends the watch on the request's ctx).
func (p *leanPool) answer(c *leanConn, resp *http.Response, stop func() bool) (*leanAnswer, error) {
	reusable := !resp.Close
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody)) // best effort: the status is the news
		_ = c.nc.Close()
		return nil, &StatusError{Code: resp.StatusCode, Body: Printable(string(body))}
	}
	a := &leanAnswer{body: resp.Body, ctype: resp.Header.Get("Content-Type"), length: resp.ContentLength}
	var zr *gzip.Reader
	switch enc := resp.Header.Get("Content-Encoding"); {
	case enc == "" || strings.EqualFold(enc, "identity"):
	case strings.EqualFold(enc, "gzip"): // asked for: decoded, as Go's transport does
		zr, _ = p.gz.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(resp.Body)
		} else {
			err = zr.Reset(resp.Body)
		}
		if err != nil {
			_ = c.nc.Close()
			return nil, fmt.Errorf("gzip: %w", err)
		}
		a.body, a.length = zr, -1
	default:
		_ = c.nc.Close()
		return nil, fmt.Errorf("shim answered Content-Encoding %q, asked for gzip or none: %w", Printable(enc), ErrEncoding)
	}
	a.finish = func(ok bool) {
		// stop false: ctx ended and its deadline may be on the connection.
		ok = stop() && ok
		if zr != nil {
			p.gz.Put(zr)
		}
		// Once the body is read to its end (a gzip stream may leave the
		// chunked body's last bytes), the connection is at the next
		// answer.
		if ok && reusable {
			if _, err := io.Copy(io.Discard, resp.Body); err == nil && c.nc.SetDeadline(time.Time{}) == nil {
				p.put(c, time.Now())
				return
			}
		}
		_ = c.nc.Close()
	}
	return a, nil
}
