// Package readme keeps README.md's quick start true: its commands run as
// written.
package readme

import (
	"bytes"
	"encoding/json"
	"net"
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

// quickStart returns the commands of the first sh block under "## Quick
// start", without the sudo ones (the machine running tests is already root
// or has the programs installed).
func quickStart(t *testing.T, readme string) []string {
	t.Helper()
	_, section, ok := strings.Cut(readme, "\n## Quick start\n")
	require.True(t, ok, "README has no Quick start section")
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	var cmds []string
	for _, l := range strings.Split(block, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "sudo ") {
			continue
		}
		cmds = append(cmds, l)
	}
	return cmds
}

// TestQuickStart runs README's quick start as written, from the repository
// root, in one shell (so `&` keeps its meaning), then checks what it
// promises: /sandboxes lists the five simulated sandboxes and the query
// shows five pods in VictoriaMetrics.
// Long because the quick start runs as one shell and each of its promises
// is checked after it.
func TestQuickStart(t *testing.T) {
	if _, err := exec.LookPath("victoria-metrics"); err != nil {
		t.Fatal("victoria-metrics not installed: run scripts/install-deps.sh")
	}
	for _, addr := range []string{"127.0.0.1:8090", "127.0.0.1:8428"} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Skipf("%s is in use on this machine; the quick start needs it", addr)
		}
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	cmds := quickStart(t, string(raw))
	require.GreaterOrEqual(t, len(cmds), 6)

	paths := []string{"/tmp/km-vm", "/tmp/km-node", "/tmp/kata-monitor-wal", "/tmp/km-vm.log", "/tmp/km-node.log", "/tmp/km.log"}
	clean := func() {
		for _, p := range paths {
			os.RemoveAll(p)
		}
	}
	clean()
	t.Cleanup(clean)

	script := "set -e\n" + strings.Join(cmds, "\n") + "\n"
	sh := exec.Command("bash", "-c", script)
	sh.Dir = root
	// A file, not a pipe: what the shell leaves running in the background
	// inherits it, and Wait would wait for them to close a pipe.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer outFile.Close()
	sh.Stdout, sh.Stderr = outFile, outFile
	// The shell and what it leaves in the background share a process
	// group, stopped as one at the end.
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, sh.Start())
	pgid := sh.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		time.Sleep(time.Second) // let VictoriaMetrics flush before its dir goes
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
	done := make(chan error, 1)
	go func() { done <- sh.Wait() }()
	var out bytes.Buffer
	select {
	case err := <-done:
		b, _ := os.ReadFile(outFile.Name())
		out.Write(b)
		logs := func() string {
			var b strings.Builder
			for _, f := range []string{"/tmp/km.log", "/tmp/km-node.log"} {
				l, _ := os.ReadFile(f)
				b.WriteString(f + ":\n" + string(l))
			}
			return b.String()
		}
		require.NoError(t, err, "quick start failed:\n%s\n%s", out.String(), logs())
	case <-time.After(8 * time.Minute):
		t.Fatalf("quick start did not finish in 8 minutes:\n%s", out.String())
	}
	require.Contains(t, out.String(), "configs/examples/local.yaml: valid")
	require.Contains(t, out.String(), "ready\n", "the /readyz wait answered")
	// What /sandboxes promises: the five simulated sandboxes (the fake node
	// and kata-monitor start side by side, so on a loaded machine the
	// README's one-shot curl may come a moment early).
	require.Eventually(t, func() bool {
		_, body := daemon.Get("http://127.0.0.1:8090/sandboxes", nil)
		for i := range 5 {
			if !strings.Contains(body, fakenode.ID(i)) {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "/sandboxes never listed the five simulated sandboxes")

	// The last command's promise: five pods a few seconds later.
	last := cmds[len(cmds)-1]
	i := strings.Index(last, "http://")
	require.GreaterOrEqual(t, i, 0, last)
	url := strings.Trim(last[i:], "'")
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		return json.NewDecoder(resp.Body).Decode(&r) == nil && len(r.Data.Result) == 5
	}, 60*time.Second, 250*time.Millisecond, "%s never listed five pods", url)
}
