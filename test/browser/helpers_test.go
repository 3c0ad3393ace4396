// Helpers: one headless Chromium per call, one kata-monitor process per test.

package browser

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/daemon"
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

// monitor is one kata-monitor process, stopped at cleanup.
type monitor struct {
	addr string
	log  *daemon.Buffer
}

func startMonitor(t *testing.T, node *fakenode.Node) *monitor {
	t.Helper()
	addr, err := daemon.FreeAddr()
	require.NoError(t, err)
	m := &monitor{addr: addr, log: &daemon.Buffer{}}
	p, err := daemon.Launch(binary, []string{"--listen-address", m.addr, "--runtime-endpoint", "unix://" + node.CRISocket,
		"--sandbox-root", node.Root, "--log-level", "debug"}, m.log)
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Stop(syscall.SIGTERM, 30*time.Second)
		if t.Failed() {
			t.Logf("kata-monitor log:\n%s", tail(m.log.String(), 60))
		}
	})
	require.NoError(t, p.WaitHealthy(m.addr, 30*time.Second, nil), "kata-monitor at start:\n%s", m.log.String())
	return m
}

func (m *monitor) url(path string) string { return "http://" + m.addr + path }

// get fetches path as a browser would (Accept: text/html).
func (m *monitor) get(path string) (int, string) {
	return daemon.Get(m.url(path), http.Header{"Accept": {"text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}})
}

func tail(s string, n int) string { return daemon.Tail(s, n) }
