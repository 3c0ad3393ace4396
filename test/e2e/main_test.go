// Package e2e runs the real kata-monitor binary against a simulated node
// (fake shims and a fake CRI on real unix sockets) and real receivers.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/daemon"
	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
	"github.com/kata-containers/kata-monitor/test/receiver"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kme2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if binary, err = daemon.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startReceiver starts a real receiver of kind with data in a temp dir,
// stopped at cleanup.
func startReceiver(t *testing.T, kind receiver.Kind) *receiver.Receiver {
	t.Helper()
	r, err := receiver.Start(ctxT(t), kind, t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(r.Stop)
	return r
}

func startNode(t *testing.T, n int) *fakenode.Node {
	t.Helper()
	node, err := fakenode.Start(sockets.Dir(t), n, fakeshim.Options{})
	require.NoError(t, err)
	t.Cleanup(node.Close)
	return node
}

// monitor is one kata-monitor process (restartable with the same args).
type monitor struct {
	t    *testing.T
	addr string
	args []string
	proc *daemon.Process
	log  *daemon.Buffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := daemon.FreeAddr()
	require.NoError(t, err)
	return addr
}

// startMonitor runs kata-monitor against node with extra args and waits for /healthz.
func startMonitor(t *testing.T, node *fakenode.Node, extra ...string) *monitor {
	t.Helper()
	m := &monitor{t: t, addr: freeAddr(t), log: &daemon.Buffer{}}
	m.args = append([]string{"--listen-address", m.addr, "--runtime-endpoint", "unix://" + node.CRISocket,
		"--sandbox-root", node.Root, "--log-level", "debug"}, extra...)
	m.start()
	t.Cleanup(func() {
		m.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("kata-monitor log:\n%s", tail(m.log.String(), 80))
		}
	})
	return m
}

// start launches the binary with m.args and waits until it is healthy.
func (m *monitor) start() {
	m.t.Helper()
	m.launch()
	if err := m.proc.WaitHealthy(m.addr, 30*time.Second, nil); err != nil {
		m.t.Fatalf("kata-monitor at start: %v\n%s", err, m.log.String())
	}
}

// launch starts the binary without waiting for it to serve.
func (m *monitor) launch() {
	m.t.Helper()
	p, err := daemon.Launch(binary, m.args, m.log)
	require.NoError(m.t, err)
	m.proc = p
}

// alive reports whether the monitor process is still running.
func (m *monitor) alive() bool { return m.proc != nil && m.proc.Alive() }

// stop sends sig and waits for the exit; returns the exit code.
func (m *monitor) stop(sig syscall.Signal) int {
	if m.proc == nil {
		return -1
	}
	return m.proc.Stop(sig, 60*time.Second)
}

func (m *monitor) get(path string, hdr http.Header) (int, string) {
	return daemon.Get("http://"+m.addr+path, hdr)
}

func tail(s string, lines int) string { return daemon.Tail(s, lines) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or timeout passes, then fails with the
// last explanation cond gave: a condition on a real process has no event to
// wait on, and the failure must say what was seen.
func waitFor(t *testing.T, timeout, every time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %s", timeout, why)
		}
		time.Sleep(every)
	}
}
