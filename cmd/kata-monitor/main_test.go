package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	child "github.com/kata-containers/kata-monitor/test/daemon"
	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
)

func TestFlagsAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	badCfg := writeFile(t, dir, "bad.yaml", "global:\n  scrape_intervall: 15s\n")
	badURL := writeFile(t, dir, "badurl.yaml", "remote_write:\n  - url: 'ftp://x'\n")
	manyBad := writeFile(t, dir, "many.yaml", "global:\n  scrape_interval: fifteen\nwal:\n  fsync: always\n")
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"unknown flag", []string{"--no-such-flag"}, exitConfig, []string{"kata-monitor: flag provided but not defined: -no-such-flag\nRun 'kata-monitor --help' for usage.\n"}},
		{"bad log level", []string{"--log-level", "loud"}, exitConfig, []string{`kata-monitor: --log-level: invalid log level "loud"`}},
		{"stray argument", []string{"serve"}, exitConfig, []string{`kata-monitor: unexpected argument "serve"`}},
		{"missing config", []string{"--config", filepath.Join(dir, "nope.yaml")}, exitConfig, []string{"kata-monitor: config: open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory\n"}},
		{"unknown key", []string{"--config", badCfg}, exitConfig, []string{"kata-monitor: config " + badCfg + ": 1 problem\n  line 2: global.scrape_intervall: unknown key (did you mean scrape_interval?)\n"}},
		{"bad url", []string{"--config", badURL}, exitConfig, []string{"line 2: remote_write[0].url: "}},
		{"every problem, one per line", []string{"--config", manyBad}, exitConfig, []string{"config " + manyBad + ": 2 problems\n  line 2: global.scrape_interval: \"fifteen\" is not a duration", "\n  line 4: wal.fsync: \"always\" must be append or segment\n"}},
		{"relative sandbox root", []string{"--sandbox-root", "/run/vc/sbs", "--sandbox-root", "relative/dir"}, exitConfig, []string{`kata-monitor: --sandbox-root "relative/dir" is not an absolute path`}},
		{"tcp runtime endpoint names the flag", []string{"--runtime-endpoint", "tcp://10.0.0.1:1234"}, exitConfig, []string{`kata-monitor: --runtime-endpoint "tcp://10.0.0.1:1234": unsupported scheme "tcp", want unix://`}},
		{"nonsense listen address", []string{"--listen-address", "nonsense", "--sandbox-root", filepath.Join(dir, "sbs")}, exitConfig, []string{`kata-monitor: --listen-address "nonsense": want host:port`}},
		{"unresolvable listen address", []string{"--listen-address", "no-such-host.invalid:8090", "--sandbox-root", filepath.Join(dir, "sbs")}, exitConfig, []string{`kata-monitor: --listen-address "no-such-host.invalid:8090"`}},
		{"missing web config", []string{"--web.config.file", filepath.Join(dir, "web.yml"), "--listen-address", "127.0.0.1:0", "--sandbox-root", filepath.Join(dir, "sbs")}, exitConfig, []string{"kata-monitor: --web.config.file " + filepath.Join(dir, "web.yml")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stderr := runFails(t, tc.args, tc.code)
			for _, w := range tc.want {
				require.Contains(t, stderr, w)
			}
			// Said once, by the program.
			require.Equal(t, 1, strings.Count(stderr, "kata-monitor:"), stderr)
			require.NotContains(t, stderr, "Usage")
			require.NotContains(t, stderr, "invalid config: cri.endpoint")
			require.NotContains(t, stderr, ":;")
		})
	}
}

// TestWireErrorSaysEndpointOnce: an endpoint that cannot open its WAL (the
// directory is under a regular file) fails at start, exit 1, naming the
// endpoint once.
func TestWireErrorSaysEndpointOnce(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "file", "")
	cfg := writeFile(t, dir, "c.yaml", "wal: {dir: "+file+"/wal}\nremote_write:\n  - {name: vm, url: 'http://127.0.0.1:1/api/v1/write'}\n")
	stderr := runFails(t, []string{"--config", cfg, "--listen-address", "127.0.0.1:0",
		"--sandbox-root", filepath.Join(dir, "sbs"), "--runtime-endpoint", filepath.Join(dir, "none.sock")}, exitFail)
	require.Equal(t, 1, strings.Count(stderr, `remote_write \"vm\"`), stderr)
}

// runFails runs the program with args, which must fail before anything
// started with exit code code, and returns what it wrote to stderr.
func runFails(t *testing.T, args []string, code int) string {
	t.Helper()
	var errb bytes.Buffer
	got := run(context.Background(), args, &bytes.Buffer{}, &errb)
	require.Equal(t, code, got, errb.String())
	require.NotContains(t, errb.String(), "started")
	return errb.String()
}

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, exitOK, run(context.Background(), []string{"--help"}, &out, &errb))
	require.Empty(t, errb.String())
	require.Contains(t, out.String(), "Usage: kata-monitor [flags]")
	require.Contains(t, out.String(), "kata-monitor check-config FILE")
	require.Contains(t, out.String(), "-log-level")
	require.NotContains(t, out.String(), "logrus")
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "remote_write:\n  - {name: vm, url: 'http://127.0.0.1:8428/api/v1/write'}\n")
	bad := writeFile(t, dir, "bad.yaml", "global:\n  scrape_interval: 1x\nremote_writes: []\nwal: {fsync: always}\n")

	var out, errb bytes.Buffer
	require.Equal(t, exitOK, run(context.Background(), []string{"check-config", good, "../../configs/examples/pull-only.yaml"}, &out, &errb), errb.String())
	require.Contains(t, out.String(), good+": valid\n")
	require.Contains(t, out.String(), "vm -> http://127.0.0.1:8428/api/v1/write")
	require.Contains(t, out.String(), "pull-only.yaml: valid\n")
	require.Contains(t, out.String(), "push: none (pull only)")

	// Tenant routing is named, with the defaults filled in, so a tenant
	// block that loaded is visibly understood.
	out.Reset()
	tenants := writeFile(t, dir, "tenants.yaml", "wal: {dir: /var/lib/km, max_size: 1GiB}\nremote_write:\n  - {name: mimir, url: 'http://127.0.0.1:9009/api/v1/push', tenant: {label: cri_namespace}}\n")
	require.Equal(t, exitOK, run(context.Background(), []string{"check-config", tenants}, &out, &errb), errb.String())
	require.Contains(t, out.String(), "    mimir -> http://127.0.0.1:9009/api/v1/push\n      tenant from label cri_namespace, sent in header X-Scope-OrgID; default tenant \"kata-monitor\"; at most 64 others at once\n"+
		"      one WAL for all its tenants: /var/lib/km/mimir/tenants.wal (1GiB in all)\n")

	out.Reset()
	errb.Reset()
	require.Equal(t, exitConfig, run(context.Background(), []string{"check-config", good, bad}, &out, &errb))
	require.Contains(t, out.String(), good+": valid")
	require.Equal(t, "kata-monitor: config "+bad+": 3 problems\n"+
		"  line 2: global.scrape_interval: \"1x\" is not a duration (a number and a unit: 500ms, 15s, 1m30s, 2h)\n"+
		"  line 3: remote_writes: unknown key (did you mean remote_write?)\n"+
		"  line 4: wal.fsync: \"always\" must be append or segment\n", errb.String())

	errb.Reset()
	require.Equal(t, exitConfig, run(context.Background(), []string{"check-config"}, &out, &errb))
	require.Contains(t, errb.String(), "want at least one FILE")
}

// TestNoTestingInDaemon: the daemon does not link Go's testing package
// through code of this module. One path remains that is not ours to cut:
// prometheus/tsdb/wlog (the WAL segments, design decision 4) imports
// tsdb/tsdbutil, whose dir_locker_testutil.go imports testing. The test
// lists every importer of testing in the daemon's build and allows only
// that one, so no new path creeps in.
func TestNoTestingInDaemon(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, ".").Output()
	require.NoError(t, err)
	allowed := map[string]bool{
		"github.com/prometheus/prometheus/tsdb/tsdbutil": true,
		"github.com/prometheus/prometheus/util/testutil": true,
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if slices.Contains(fields[1:], "testing") && !allowed[fields[0]] {
			t.Errorf("%s imports testing into the daemon", fields[0])
		}
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
	// No sandbox root and no CRI: the log says what to check.
	require.Contains(t, errb.String(), "is this a Kata Containers node?")
	require.Contains(t, errb.String(), "--runtime-endpoint is the runtime's socket")
	// The shutdown is logged (on its own goroutine) before the end, even
	// when nothing was in flight to wait for.
	log := errb.String()
	shutting, stopped := strings.Index(log, "msg=\"shutting down"), strings.Index(log, "msg=\"kata-monitor stopped\"")
	require.True(t, shutting >= 0 && stopped > shutting, "\"shutting down\" (at %d) before \"kata-monitor stopped\" (at %d):\n%s", shutting, stopped, log)
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

// TestReadiness: with remote_write, /readyz answers 503 with the reason until
// the first round is done, 200 after, and names the endpoint whose WAL is
// closed once the queues stopped. The first round also releases the
// binary's startup pages, once.
func TestReadiness(t *testing.T) {
	d, logs := wiredDaemon(t)

	// Built, not started: not ready, and /readyz says why.
	rec := httptest.NewRecorder()
	d.api.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "not ready: first scrape round not done yet\n", rec.Body.String())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	url := "http://" + d.listener.Addr().String() + "/readyz"
	require.Eventually(t, func() bool {
		code, body := child.Get(url, nil)
		return code == http.StatusOK && body == "ready\n"
	}, 20*time.Second, 20*time.Millisecond)
	// The first round done, the binary's startup pages are released
	// (imagepages.go) once.
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "released the binary's startup pages")
	}, 20*time.Second, 20*time.Millisecond, logs.String())
	cancel()
	require.NoError(t, <-done)
	require.EqualError(t, d.ready(), `remote_write "vm": wal closed`)
	require.Equal(t, 1, strings.Count(logs.String(), "startup pages"), logs.String())
}

// TestReleaseBinaryPagesOff: --release-binary-pages=false keeps the
// binary's pages mapped: rounds run and push, nothing is released.
func TestReleaseBinaryPagesOff(t *testing.T) {
	d, logs := wiredDaemon(t, "--release-binary-pages=false")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	// Two rounds: the release after the first would have run by the second.
	require.Eventually(t, func() bool {
		rec := httptest.NewRecorder()
		d.api.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics/self", nil))
		return regexp.MustCompile(`(?m)^kata_monitor_rounds_total\{trigger="schedule"\} [2-9]`).MatchString(rec.Body.String())
	}, 20*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, logs.String(), "the binary's pages stay mapped")
	require.NotContains(t, logs.String(), "released the binary's", logs.String())
}

// wiredDaemon wires (does not run) a daemon with one fake sandbox, pushing
// every 250 ms to an httptest receiver named vm that answers 204, with
// flags extra; its logs, at debug, are returned too.
func wiredDaemon(t *testing.T, extra ...string) (*daemon, *child.Buffer) {
	t.Helper()
	dir, err := os.MkdirTemp("", "kmrdy")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	node, err := fakenode.Start(dir, 1, fakeshim.Options{})
	require.NoError(t, err)
	t.Cleanup(node.Close)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(recv.Close)
	cfgPath := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("global: {scrape_interval: 250ms, scrape_timeout: 200ms}\nwal: {dir: "+filepath.Join(dir, "wal")+"}\n"+
		"remote_write:\n  - {name: vm, url: '"+recv.URL+"/api/v1/write'}\n"), 0o644))
	args := append([]string{"--config", cfgPath, "--sandbox-root", node.Root, "--runtime-endpoint", node.CRISocket, "--listen-address", "127.0.0.1:0"}, extra...)
	o, err := parseFlags(args, io.Discard)
	require.NoError(t, err)
	cfg, err := loadConfig(o)
	require.NoError(t, err)
	logs := &child.Buffer{}
	d, err := wire(cfg, o, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	d.listener, err = listen(o.listenAddress, "")
	require.NoError(t, err)
	return d, logs
}

// TestCheckConfigDocumentedExample runs check-config on the file shown in
// docs/configuration.md and compares with the output shown there and in
// README.md, so the documented errors are the real ones.
func TestCheckConfigDocumentedExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "(`kata-monitor.yaml`, deliberately wrong):\n\n```text\n")
	require.True(t, ok, "docs/configuration.md lost its check-config example")
	file, rest, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	const prompt = "$ kata-monitor check-config kata-monitor.yaml\n"
	_, rest, ok = strings.Cut(rest, prompt)
	require.True(t, ok)
	want, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kata-monitor.yaml"), []byte(file), 0o644))
	wd, err := os.Getwd()
	require.NoError(t, err)
	t.Chdir(dir)
	var out, errb bytes.Buffer
	require.Equal(t, exitConfig, run(context.Background(), []string{"check-config", "kata-monitor.yaml"}, &out, &errb))
	require.Equal(t, want, errb.String())

	readme, err := os.ReadFile(filepath.Join(wd, "../../README.md"))
	require.NoError(t, err)
	require.Contains(t, string(readme), prompt+want, "README.md shows the same output")
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}
