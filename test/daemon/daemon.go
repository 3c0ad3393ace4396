// Package daemon builds the real kata-monitor binary and runs it as a child
// process for end-to-end tests, the browser test, the demo and the
// benchmark: one way to start, probe and stop it, so that every harness
// exercises the same thing an operator runs.
package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles ./cmd/kata-monitor of this module into dir and returns the
// binary's path. It needs the go command (tests run with it anyway).
func Build(dir string) (string, error) {
	bin := dir + "/kata-monitor"
	cmd := exec.Command("go", "build", "-o", bin, "github.com/kata-containers/kata-monitor/cmd/kata-monitor")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build kata-monitor: %w\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a 127.0.0.1 address with a port free at the time of the
// call.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Buffer collects a process's output while others read it. Concurrency-safe.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Tail returns the last n lines of s, for failure messages.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Process is one run of the binary. Launch starts it; every method is safe
// to call from any goroutine once Launch returned.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Launch starts bin with args, writing its output to out. The child dies
// with the caller (Pdeathsig), so a crashed test leaves nothing behind. It
// runs in its own process group: a Ctrl-C at the terminal reaches only the
// caller, whose Stop then sends the one signal (kata-monitor takes a
// second SIGINT or SIGTERM as "exit at once").
func Launch(bin string, args []string, out io.Writer) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// ErrExited is returned by WaitHealthy when the process died first.
var ErrExited = errors.New("kata-monitor exited")

// WaitHealthy polls ready (nil: GET http://addr/healthz answers 200) until it
// holds, the process exits, or timeout passes. A child process's readiness
// has no event to wait on, hence the polling.
func (p *Process) WaitHealthy(addr string, timeout time.Duration, ready func() bool) error {
	if ready == nil {
		ready = func() bool {
			code, _ := Get("http://"+addr+"/healthz", nil)
			return code == http.StatusOK
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		if !p.Alive() {
			return ErrExited
		}
		if ready() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kata-monitor not healthy after %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Alive reports whether the process is still running.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop sends sig, waits up to grace for the exit (then SIGKILL) and returns
// the exit code (-1 when killed by a signal).
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) int {
	if p.Alive() {
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	return p.cmd.ProcessState.ExitCode()
}

// Signal sends sig to the process without waiting.
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Get fetches url with the given headers and returns the status and body
// (status 0 and the error text when the request failed).
func Get(url string, hdr http.Header) (int, string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, body, err := Do(req)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, body
}

// Do sends req with http.DefaultClient and returns the response with its
// body read and closed.
func Do(req *http.Request) (*http.Response, string, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}
