package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/daemon"
	"github.com/kata-containers/kata-monitor/test/fakenode"
)

// TestDemoURLs runs the demo as `make demo` does (DEMO_SECONDS set, a few
// sandboxes), reads the URLs it prints and fetches every one: each must
// answer 200 with data of the simulated node (a sandbox id, a pod name or
// kata-monitor's own series), not a 404 page.
// Long because the demo runs once and every URL it prints is checked
// against it.
func TestDemoURLs(t *testing.T) {
	dir := t.TempDir()
	bin, err := daemon.Build(dir)
	require.NoError(t, err)
	demo := filepath.Join(dir, "demo")
	out, err := exec.Command("go", "build", "-o", demo, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)

	cmd := exec.Command(demo)
	cmd.Env = append(os.Environ(), "DEMO_SECONDS=120", "DEMO_SANDBOXES=3", "DEMO_BIN="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr daemon.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})

	// The URL block ends with "Ctrl-C to stop."; what follows is progress.
	lines := bufio.NewReader(stdout)
	var printed strings.Builder
	var urls []string
	urlRE := regexp.MustCompile(`https?://\S+`)
	for {
		line, err := lines.ReadString('\n')
		printed.WriteString(line)
		require.NoError(t, err, "demo output so far:\n%s\nstderr:\n%s", printed.String(), stderr.String())
		urls = append(urls, urlRE.FindAllString(line, -1)...)
		if strings.HasPrefix(line, "Ctrl-C to stop.") {
			break
		}
	}
	// Piped, as here, each progress report is a line of its own (no \r).
	var progressLine string
	for strings.TrimSpace(progressLine) == "" { // a blank line after the URL block
		progressLine, err = lines.ReadString('\n')
		require.NoError(t, err)
	}
	require.True(t, strings.HasPrefix(progressLine, "sandboxes "), "progress line %q", progressLine)
	require.NotContains(t, progressLine, "\r")
	go func() { _, _ = io.Copy(io.Discard, lines); exited <- cmd.Wait() }()
	require.GreaterOrEqual(t, len(urls), 6, printed.String())

	// The demo prints the URLs once the data is there: each answers with
	// data at once, not some seconds later.
	markers := []string{fakenode.ID(0), `pod-0000`, "kata_monitor_running_shim_count"}
	for _, u := range urls {
		var last string
		require.True(t, func() bool {
			code, body := daemon.Get(u, nil)
			last = fmt.Sprintf("%d\n%s", code, daemon.Tail(body, 5))
			if code != http.StatusOK {
				return false
			}
			for _, m := range markers {
				if strings.Contains(body, m) {
					return true
				}
			}
			return false
		}(), "%s: answer: %s", u, last)
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-exited:
		require.NoError(t, err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop within 30s of SIGINT")
	}
}
