package shim

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/sockets"
)

// rawAnswer is what a rawShim writes for one request: bytes (after
// delay), then it keeps the connection (the default), closes it, or
// leaves it hanging without a byte more until the test ends.
type rawAnswer struct {
	delay time.Duration
	bytes string
	close bool
}

// rawShim serves a unix socket without net/http: the k-th request
// (counted over every connection) gets answers[min(k, len-1)], as bytes
// on the wire, so answers net/http's server would never give (wrong
// lengths, garbage, HTTP/1.0, several answers for one request) can be
// played to the client.
func rawShim(t *testing.T, answers []rawAnswer) (sock string, stop func()) {
	t.Helper()
	sock = filepath.Join(sockets.Dir(t), "raw.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	k := 0
	serve := func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			for { // a request ends with an empty line
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) <= 2 {
					break
				}
			}
			mu.Lock()
			a := answers[min(k, len(answers)-1)]
			k++
			mu.Unlock()
			select {
			case <-time.After(a.delay):
			case <-done:
				return
			}
			if _, err := io.WriteString(c, a.bytes); err != nil || a.close {
				return
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serve(c) })
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { close(done); l.Close(); wg.Wait() }) }
	t.Cleanup(stop)
	return sock, stop
}

// transportGet is how the scrape read a shim before 2034fc9 (net/http's
// Transport, as upstream kata-monitor does): the reference the scrape's
// own client is compared with.
func transportGet(ctx context.Context, c *Client) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://shim/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", ScrapeAccept)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{Code: resp.StatusCode}
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, ErrEncoding
	}
	if resp.ContentLength > c.cfg.MaxResponseBytes {
		return nil, ErrTooLarge
	}
	return readCapped(resp.Body, nil, c.cfg.MaxResponseBytes, resp.ContentLength)
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

// TestScrapeFaults: for each way a shim can answer badly, three scrapes
// in a row with the scrape's own client (lean.go) succeed or fail as
// they did with net/http's Transport (upstream kata-monitor's client),
// with the same bodies, only the successes counted successful, and a
// healthy shim scraped between them unaffected; and once the pool forgets
// the shims, no goroutine or file descriptor is left.
// Long for its table.
func TestScrapeFaults(t *testing.T) {
	const body = "up 1\n"
	ok := func(extra, b string) string {
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s", len(b), extra, b)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(body))
	_ = zw.Close()
	chunked := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nup \r\n2\r\n1\n\r\n0\r\n"
	tests := []struct {
		name    string
		answers []rawAnswer
		timeout time.Duration // Config.Timeout; 0: 10 s, long enough for any load
		// unasked: bytes follow the first answer unasked. Go's Transport
		// closes the connection when it sees them before the next request
		// (it logs "Unsolicited response"), but reads them as the next
		// answer when that request was quicker: a race, so here every
		// scrape must read a fresh answer rather than match the Transport.
		unasked bool
	}{
		{"chunked", []rawAnswer{{bytes: chunked + "\r\n"}}, 0, false},
		{"chunked with trailers", []rawAnswer{{bytes: chunked + "X-Checksum: 1\r\n\r\n"}}, 0, false},
		{"gzip", []rawAnswer{{bytes: ok("Content-Encoding: gzip\r\n", gz.String())}}, 0, false},
		{"gzip chunked", []rawAnswer{{bytes: fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", gz.Len(), gz.String())}}, 0, false},
		{"deflate", []rawAnswer{{bytes: ok("Content-Encoding: deflate\r\n", body)}}, 0, false},
		{"content-length over the cap", []rawAnswer{{bytes: ok("", strings.Repeat("x", 2048))}}, 0, false},
		{"chunked body over the cap", []rawAnswer{{bytes: fmt.Sprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n%s\r\n0\r\n\r\n", strings.Repeat("x", 2048))}}, 0, false},
		{"content-length shorter than the body", []rawAnswer{{bytes: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nup 1\ngarbage\r\n"}}, 0, true},
		{"content-length longer than the body, closed", []rawAnswer{{bytes: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + body, close: true}}, 0, false},
		{"content-length longer than the body, kept", []rawAnswer{{bytes: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + body}}, 200 * time.Millisecond, false},
		{"closed mid chunked body", []rawAnswer{{bytes: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nup", close: true}}, 0, false},
		{"100 continue first", []rawAnswer{{bytes: "HTTP/1.1 100 Continue\r\n\r\n" + ok("", body)}}, 0, false},
		{"500 with a body", []rawAnswer{{bytes: "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom"}}, 0, false},
		{"slow beyond the timeout", []rawAnswer{{delay: 2 * time.Second, bytes: ok("", body)}}, 200 * time.Millisecond, false},
		{"garbage for the second request", []rawAnswer{{bytes: ok("", body)}, {bytes: "SSH-2.0-OpenSSH\r\n\r\n"}, {bytes: ok("", body)}}, 0, false},
		{"an unasked second answer", []rawAnswer{{bytes: ok("", body) + ok("", "up 2\n")}, {bytes: ok("", body)}}, 0, true},
		{"http/1.0 until close", []rawAnswer{{bytes: "HTTP/1.0 200 OK\r\n\r\n" + body, close: true}}, 0, false},
		{"http/1.0 keep-alive", []rawAnswer{{bytes: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n" + ok("", body)[len("HTTP/1.1 200 OK\r\n"):]}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Timeout = cmp.Or(tt.timeout, 10*time.Second)
			cfg.MaxResponseBytes = 1024
			type result struct {
				body string
				err  error
			}
			healthy := cannedShim(t, []byte(body)) // another sandbox's shim, scraped between
			goroutines, fds := runtime.NumGoroutine(), openFDs(t)
			run := func(get func(ctx context.Context, p *Pool, sock string) ([]byte, error)) ([]result, *Pool) {
				p := testPool(t, cfg)
				sock, stop := rawShim(t, tt.answers)
				var out []result
				for range 3 {
					b, err := get(t.Context(), p, sock)
					out = append(out, result{string(b), err})
				}
				p.Forget(sock)
				stop()
				return out, p
			}
			want, _ := run(func(ctx context.Context, p *Pool, sock string) ([]byte, error) {
				return transportGet(ctx, p.Client(sock))
			})
			got, pool := run(func(ctx context.Context, p *Pool, sock string) ([]byte, error) {
				b, err := p.Metrics(ctx, healthy, nil)
				if err != nil || string(b) != body {
					return nil, fmt.Errorf("the healthy shim's scrape: %q, %w", b, err)
				}
				return p.Metrics(ctx, sock, nil)
			})
			for i := range want {
				t.Logf("scrape %d: transport %q %v, lean %q %v", i, want[i].body, want[i].err, got[i].body, got[i].err)
			}
			for i := range want {
				if tt.unasked {
					require.NoError(t, got[i].err, "scrape %d", i)
					require.Equal(t, body, got[i].body, "scrape %d", i)
					continue
				}
				if want[i].err != nil {
					require.Error(t, got[i].err, "scrape %d: the Transport failed with %v", i, want[i].err)
					continue
				}
				require.NoError(t, got[i].err, "scrape %d: the Transport read %q", i, want[i].body)
				require.Equal(t, want[i].body, got[i].body, "scrape %d", i)
			}
			failed := 0
			for i := range got {
				if got[i].err != nil {
					failed++
				}
			}
			require.Equal(t, float64(3+3-failed), pool.count(endpointMetrics, resultSuccess), "scrapes counted successful (the healthy shim's 3 too)")
			pool.Forget(healthy)
			// Polled here: require.Eventually's own goroutine would count.
			for end := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > goroutines || openFDs(t) > fds; {
				require.True(t, time.Now().Before(end), "goroutines %d (before %d), fds %d (before %d)",
					runtime.NumGoroutine(), goroutines, openFDs(t), fds)
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
