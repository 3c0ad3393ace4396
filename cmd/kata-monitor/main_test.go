package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	child "github.com/kata-containers/kata-monitor/test/daemon"
)

func TestFlagsAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	badCfg := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(badCfg, []byte("global:\n  scrape_intervall: 15s\n"), 0o644))
	badURL := filepath.Join(dir, "badurl.yaml")
	require.NoError(t, os.WriteFile(badURL, []byte("remote_write:\n  - url: 'ftp://x'\n"), 0o644))
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"--no-such-flag"}, exitConfig, "flag provided but not defined: -no-such-flag"},
		{"bad log level", []string{"--log-level", "loud"}, exitConfig, `invalid log level "loud"`},
		{"stray argument", []string{"serve"}, exitConfig, `unexpected argument "serve"`},
		{"missing config", []string{"--config", filepath.Join(dir, "nope.yaml")}, exitConfig, "no such file"},
		{"unknown key", []string{"--config", badCfg}, exitConfig, "line 2: field scrape_intervall not found"},
		{"bad url", []string{"--config", badURL}, exitConfig, "remote_write[0].url"},
		{"relative sandbox root", []string{"--sandbox-root", "relative/dir"}, exitConfig, "sandbox_roots[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			require.Equal(t, tc.code, code, errb.String())
			require.Contains(t, errb.String(), tc.want)
			// One line of reason (flag usage text aside), starting with the program name.
			require.Contains(t, errb.String(), "kata-monitor:")
		})
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, exitOK, run(context.Background(), []string{"--version"}, &out, &errb))
	for _, want := range []string{"kata-monitor\n", "Version:", "Go version:\t" + runtime.Version(), "Git commit:", "OS/Arch:\t" + runtime.GOOS + "/" + runtime.GOARCH} {
		require.Contains(t, out.String(), want)
	}
}

func TestLogLevels(t *testing.T) {
	for _, l := range []string{"trace", "debug", "info", "warn", "error", "fatal", "panic", "INFO"} {
		_, err := parseLevel(l)
		require.NoError(t, err, l)
	}
}

// TestRunAndStop starts the whole daemon in-process on temp dirs (no CRI
// running: metrics must still flow) and stops it by cancelling, as SIGTERM does.
func TestRunAndStop(t *testing.T) {
	dir, err := os.MkdirTemp("", "kmcmd")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb child.Buffer
	go func() {
		done <- run(ctx, []string{"--listen-address", addr, "--sandbox-root", filepath.Join(dir, "sbs"),
			"--runtime-endpoint", "unix://" + filepath.Join(dir, "none.sock")}, &bytes.Buffer{}, &errb)
	}()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 20*time.Second, 20*time.Millisecond)
	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code)
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop within 20s of cancel")
	}
}

// TestListenFailure: an address in use is a runtime failure (exit 1), said once.
func TestListenFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	dir := t.TempDir()
	var errb child.Buffer
	code := run(context.Background(), []string{"--listen-address", l.Addr().String(), "--sandbox-root", filepath.Join(dir, "sbs"),
		"--runtime-endpoint", filepath.Join(dir, "none.sock")}, &bytes.Buffer{}, &errb)
	require.Equal(t, exitFail, code)
	require.True(t, strings.Contains(errb.String(), "address already in use"), errb.String())
}
