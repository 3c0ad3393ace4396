// Package e2e runs the real kata-monitor binary against a simulated node
// (fake shims and a fake CRI on real unix sockets) and real receivers.
package e2e

import (
	"bytes"
	"context"
	"fmt"
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
	"github.com/kata-containers/kata-monitor/test/fakeshim"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kme2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "kata-monitor")
	build := exec.Command("go", "build", "-o", binary, "github.com/kata-containers/kata-monitor/cmd/kata-monitor")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kata-monitor:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shortDir is a temp dir short enough for <dir>/sbs/<64 hex>/shim-monitor.sock.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "km")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func startNode(t *testing.T, n int) *fakenode.Node {
	t.Helper()
	node, err := fakenode.Start(shortDir(t), n, fakeshim.Options{})
	require.NoError(t, err)
	t.Cleanup(node.Close)
	return node
}

// monitor is one kata-monitor process.
type monitor struct {
	t    *testing.T
	addr string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// startMonitor runs kata-monitor against node with extra args and waits for /healthz.
func startMonitor(t *testing.T, node *fakenode.Node, extra ...string) *monitor {
	t.Helper()
	m := &monitor{t: t, addr: freeAddr(t), log: &syncBuffer{}}
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

func (m *monitor) start() {
	m.t.Helper()
	m.cmd = exec.Command(binary, m.args...)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(m.t, m.cmd.Start())
	m.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(m.cmd, m.done)
	require.Eventually(m.t, func() bool {
		select {
		case <-m.done:
			return true
		default:
		}
		code, _ := m.get("/healthz", nil)
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	select {
	case <-m.done:
		m.t.Fatalf("kata-monitor exited at start: %s", m.log.String())
	default:
	}
}

// stop sends sig and waits for the exit; returns the exit code.
func (m *monitor) stop(sig syscall.Signal) int {
	if m.cmd == nil || m.cmd.Process == nil {
		return -1
	}
	select {
	case <-m.done:
	default:
		_ = m.cmd.Process.Signal(sig)
		select {
		case <-m.done:
		case <-time.After(60 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	}
	return m.cmd.ProcessState.ExitCode()
}

func (m *monitor) get(path string, hdr http.Header) (int, string) {
	req, err := http.NewRequest(http.MethodGet, "http://"+m.addr+path, nil)
	if err != nil {
		return 0, err.Error()
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

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
