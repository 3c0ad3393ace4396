package httpapi

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/kata-containers/kata-monitor/test/daemon"
)

// startServe runs Serve on a fresh loopback listener and returns its base
// URL, its cancel and a channel closed when Serve has returned (nil).
// Cleanup cancels it and requires that clean return.
func startServe(t *testing.T, env *testEnv, webConfig string) (string, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var serveErr error
	go func() {
		defer close(done)
		serveErr = env.api.Serve(ctx, l, webConfig)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			assert.NoError(t, serveErr)
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return "http://" + l.Addr().String(), cancel, done
}

func get(t *testing.T, url string, mutate func(*http.Request)) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if mutate != nil {
		mutate(req)
	}
	resp, body, err := daemon.Do(req)
	require.NoError(t, err)
	return resp, body
}

func TestServeBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	cfgFile := filepath.Join(t.TempDir(), "web.yml")
	require.NoError(t, os.WriteFile(cfgFile, fmt.Appendf(nil, "basic_auth_users:\n  alice: %s\n", hash), 0o600))

	env := newTestEnv(t, DefaultConfig(), nil)
	base, _, _ := startServe(t, env, cfgFile)

	tests := []struct {
		name     string
		user     string
		pass     string
		wantCode int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", "alice", "nope", http.StatusUnauthorized},
		{"unknown user", "bob", "s3cret", http.StatusUnauthorized},
		{"valid", "alice", "s3cret", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, base+"/sandboxes", func(r *http.Request) {
				if tt.user != "" {
					r.SetBasicAuth(tt.user, tt.pass)
				}
			})
			assert.Equal(t, tt.wantCode, resp.StatusCode)
			if tt.wantCode == http.StatusOK {
				assert.Equal(t, idA+"\n"+idB+"\n", body)
			} else {
				assert.NotContains(t, body, idA)
			}
		})
	}
}

func TestServePlainAndLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxHeaderBytes = 4 << 10
	env := newTestEnv(t, cfg, nil)
	base, _, _ := startServe(t, env, "")

	resp, body := get(t, base+"/healthz", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok\n", body)

	// A 64 KB sandbox value is stopped by net/http's header limit (431)
	// before the handler: either way, no shim is asked.
	resp, _ = get(t, base+"/agent-url?sandbox="+strings.Repeat("a", 64<<10), nil)
	assert.Contains(t, []int{http.StatusRequestHeaderFieldsTooLarge, http.StatusRequestURITooLong}, resp.StatusCode)
	assert.Empty(t, env.shims.Requested())

	resp, _ = get(t, base+"/metrics?sandbox="+strings.Repeat("a", 3<<10), nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Empty(t, env.shims.Requested())

	// gzip is negotiated over the wire too (the client asks on its own and
	// decompresses transparently).
	resp, body = get(t, base+"/metrics", nil)
	assert.True(t, resp.Uncompressed, "response should have been gzip-encoded")
	assert.Contains(t, body, "kata_hypervisor_fds")
}

func TestServerConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WriteTimeout = 45 * time.Second
	env := newTestEnv(t, cfg, nil)
	srv := env.api.newServer(context.Background())
	assert.Equal(t, 10*time.Second, srv.ReadHeaderTimeout)
	assert.Equal(t, 30*time.Second, srv.ReadTimeout)
	assert.Equal(t, 45*time.Second, srv.WriteTimeout)
	assert.Equal(t, idleTimeout, srv.IdleTimeout)
	assert.Equal(t, 64<<10, srv.MaxHeaderBytes)
	assert.NotNil(t, srv.ErrorLog)
}

// TestSlowHeaderClientIsCut sends half a request line and never finishes:
// the server must close the connection after ReadHeaderTimeout (shortened
// through ReadTimeout so the test is quick).
func TestSlowHeaderClientIsCut(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReadTimeout = 200 * time.Millisecond
	env := newTestEnv(t, cfg, nil)
	base, _, _ := startServe(t, env, "")

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	start := time.Now()
	b, err := io.ReadAll(conn)
	require.NoError(t, err, "server should close the connection, not let the client deadline hit")
	assert.NotContains(t, string(b), "200 OK")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestLongMetricsOutlivesReadTimeout: ReadTimeout bounds reading the
// request only; a round slower than it must still be answered (neither the
// request context nor the write side may be cut by it).
func TestLongMetricsOutlivesReadTimeout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReadTimeout = 100 * time.Millisecond
	env := newTestEnv(t, cfg, nil)
	env.metrics.hook = func(ctx context.Context) error {
		t := time.NewTimer(500 * time.Millisecond) // a slow round, 5x ReadTimeout
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	base, _, _ := startServe(t, env, "")
	resp, body := get(t, base+"/metrics", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, "kata_hypervisor_fds")
}

// TestServeGracefulShutdown: a request in flight when ctx ends completes,
// and Serve returns nil afterwards.
func TestServeGracefulShutdown(t *testing.T) {
	env := newTestEnv(t, DefaultConfig(), nil)
	entered, release := make(chan struct{}), make(chan struct{})
	env.metrics.hook = func(ctx context.Context) error {
		close(entered)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	base, cancel, done := startServe(t, env, "")
	type result struct {
		code int
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		got <- result{code: resp.StatusCode, err: err}
	}()
	<-entered
	cancel()
	// Serve must wait for the in-flight request.
	select {
	case <-done:
		t.Fatal("Serve returned with a request in flight")
	default:
	}
	close(release)
	r := <-got
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusOK, r.code)
	select {
	case <-done: // the cleanup checks the error
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestRun(t *testing.T) {
	t.Run("clean shutdown", func(t *testing.T) {
		env := newTestEnv(t, DefaultConfig(), nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.NoError(t, env.api.Run(ctx, "127.0.0.1:0", ""))
	})
	t.Run("address in use", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		env := newTestEnv(t, DefaultConfig(), nil)
		err = env.api.Run(context.Background(), l.Addr().String(), "")
		require.ErrorContains(t, err, "address already in use")
		require.ErrorContains(t, err, l.Addr().String())
	})
	t.Run("empty address", func(t *testing.T) {
		env := newTestEnv(t, DefaultConfig(), nil)
		require.ErrorContains(t, env.api.Run(context.Background(), "", ""), "listen address")
	})
	t.Run("bad web config", func(t *testing.T) {
		cfgFile := filepath.Join(t.TempDir(), "web.yml")
		require.NoError(t, os.WriteFile(cfgFile, []byte("nonsense_key: 1\n"), 0o600))
		env := newTestEnv(t, DefaultConfig(), nil)
		require.Error(t, env.api.Run(context.Background(), "127.0.0.1:0", cfgFile))
	})
}

// TestWriteDeadlines: a server-wide WriteTimeout cuts an ordinary slow
// response, but a profile proxy gets seconds+30s and completes.
func TestWriteDeadlines(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WriteTimeout = 100 * time.Millisecond
	env := newTestEnv(t, cfg, nil)
	env.shims.debugDelay = 400 * time.Millisecond
	base, _, _ := startServe(t, env, "")

	resp, body := get(t, base+"/debug/pprof/profile?seconds=1&sandbox="+idB, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "debug /debug/pprof/profile")

	// /debug/vars has the ordinary 100ms bound: the late answer is lost.
	_, err := http.Get(base + "/debug/vars?sandbox=" + idB)
	require.Error(t, err)
}
