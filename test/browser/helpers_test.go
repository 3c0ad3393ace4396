// Helpers: one headless Chromium per call, one kata-monitor process per test.

package browser

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakenode"
)

// chromiumTimeout bounds every browser run: a wedged renderer must fail the
// test, not hang CI until the global timeout.
const chromiumTimeout = 30 * time.Second

// browser runs one headless Chromium per call, each with its own profile.
type browser struct {
	t    *testing.T
	path string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed: `make deps` (scripts/install-deps.sh --browser) or `apt-get install -y chromium`")
	}
	return &browser{t: t, path: path}
}

// run starts chromium headless with the given extra flags and URL, and
// returns its stdout. The whole process group is killed at the timeout,
// because Chromium's helper processes would otherwise keep stdout open.
func (b *browser) run(url string, extra ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + b.t.TempDir(),
	}, extra...)
	cmd := exec.CommandContext(ctx, b.path, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	require.NoError(b.t, err, "chromium %s %s (ctx: %v)\nstderr tail:\n%s", strings.Join(extra, " "), url, ctx.Err(), tail(stderr.String(), 20))
	return stdout.String()
}

// dumpDOM returns the DOM Chromium built for url, serialised.
func (b *browser) dumpDOM(url string) string {
	b.t.Helper()
	return b.run(url, "--dump-dom")
}

// screenshot saves a PNG of url at 1280x800 to path.
func (b *browser) screenshot(url, path string) {
	b.t.Helper()
	require.NoError(b.t, os.MkdirAll(filepath.Dir(path), 0o755))
	_ = os.Remove(path) // a stale artefact must not pass the checks below
	b.run(url, "--screenshot="+path, "--window-size=1280,800")
}

// monitor is one kata-monitor process, killed at cleanup.
type monitor struct {
	addr string
	log  *lockedBuffer
}

func startMonitor(t *testing.T, node *fakenode.Node) *monitor {
	t.Helper()
	m := &monitor{addr: freeAddr(t), log: &lockedBuffer{}}
	cmd := exec.Command(binary, "--listen-address", m.addr, "--runtime-endpoint", "unix://"+node.CRISocket,
		"--sandbox-root", node.Root, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = m.log, m.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("kata-monitor log:\n%s", tail(m.log.String(), 60))
		}
	})
	require.Eventually(t, func() bool {
		select {
		case <-done:
			return true // reported below
		default:
		}
		code, _ := m.get("/healthz")
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	select {
	case <-done:
		t.Fatalf("kata-monitor exited at start:\n%s", m.log.String())
	default:
	}
	return m
}

func (m *monitor) url(path string) string { return "http://" + m.addr + path }

// get fetches path as a browser would (Accept: text/html).
func (m *monitor) get(path string) (int, string) {
	req, err := http.NewRequest(http.MethodGet, m.url(path), nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// shortDir keeps <dir>/sbs/<64 hex>/shim-monitor.sock under 108 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "km")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
