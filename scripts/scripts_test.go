package scripts

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestInstallDepsWaitsForAptLock holds a lock file the way apt and dpkg do
// (a POSIX write lock), runs install-deps.sh in dry-run mode against it and
// checks that it says who holds the lock, waits, and proceeds (with apt-get's
// own lock timeout) once the lock is released.
func TestInstallDepsWaitsForAptLock(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "lock-frontend")
	f, err := os.Create(lockPath)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}))

	cmd := exec.Command("bash", "install-deps.sh")
	cmd.Env = append(os.Environ(), "INSTALL_DEPS_DRY_RUN=1", "INSTALL_DEPS_WANT=some-package",
		"INSTALL_DEPS_LOCKS="+lockPath, "INSTALL_DEPS_LOCK_TIMEOUT=120")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := bufio.NewScanner(stderr)
	var seen []string
	next := func() string {
		require.True(t, lines.Scan(), "install-deps said: %q", seen)
		seen = append(seen, lines.Text())
		return lines.Text()
	}
	require.Equal(t, "install-deps: apt-get install -y some-package", next())
	waiting := next()
	require.Contains(t, waiting, "the apt/dpkg lock is held by process "+strconv.Itoa(os.Getpid()))
	require.Contains(t, waiting, "waiting up to 120s")

	// Still waiting while the lock is held; then released.
	require.Nil(t, cmd.ProcessState)
	require.NoError(t, syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &syscall.Flock_t{Type: syscall.F_UNLCK, Whence: 0}))
	require.Contains(t, next(), "install-deps: lock released after")
	require.Equal(t, "install-deps: would run: apt-get -o DPkg::Lock::Timeout=120 update -qq", next())
	require.Equal(t, "install-deps: would run: apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends some-package", next())
	require.NoError(t, cmd.Wait())
}

// TestInstallDepsWithoutLock: nobody holds the lock, no waiting message.
func TestInstallDepsWithoutLock(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "lock")
	require.NoError(t, os.WriteFile(lockPath, nil, 0o644))
	cmd := exec.Command("bash", "install-deps.sh")
	cmd.Env = append(os.Environ(), "INSTALL_DEPS_DRY_RUN=1", "INSTALL_DEPS_WANT=p", "INSTALL_DEPS_LOCKS="+lockPath)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NotContains(t, string(out), "waiting")
	require.Contains(t, string(out), "would run: apt-get -o DPkg::Lock::Timeout=600 install")
}

// TestFuzzScriptLeavesNoLog: fuzz.sh keeps its log in a temp file it
// removes, whether the targets pass or not.
func TestFuzzScriptLeavesNoLog(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a fuzz target")
	}
	tmp := t.TempDir()
	cmd := exec.Command("bash", "scripts/fuzz.sh", "1x")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "FUZZ_PKGS=./sources/shim")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "fuzz: all targets passed")
	_, err = os.Stat(filepath.Join(os.TempDir(), "fuzz-"+strconv.Itoa(cmd.Process.Pid)+".log"))
	require.True(t, os.IsNotExist(err), "fuzz.sh left /tmp/fuzz-<pid>.log behind")
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	var names []string
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "kata-monitor-fuzz") || strings.HasPrefix(e.Name(), "fuzz-") {
			names = append(names, e.Name())
		}
	}
	require.Empty(t, names, "fuzz.sh left its log behind")
}

// TestFuzzScriptRetriesOnlyTheDeadlineRace runs fuzz.sh against a fake go
// command: a bare "context deadline exceeded" without a failing input (Go's
// fuzztime race, golang/go#75804) is run once more; the same twice, or a
// real failure, fails at once.
func TestFuzzScriptRetriesOnlyTheDeadlineRace(t *testing.T) {
	const deadline = "--- FAIL: FuzzX (5.12s)\n    context deadline exceeded\nFAIL"
	const crash = "--- FAIL: FuzzX (0.10s)\n    x_test.go:12: boom\n    Failing input written to testdata/fuzz/FuzzX/0123\nFAIL"
	tests := []struct {
		name    string
		answers []string // what each go test call prints ("" passes)
		ok      bool
		calls   int
	}{
		{"passes", []string{""}, true, 1},
		{"deadline race then pass", []string{deadline, ""}, true, 2},
		{"deadline race twice", []string{deadline, deadline}, false, 2},
		{"real failure", []string{crash, ""}, false, 1},
		{"deadline with a failing input", []string{deadline + "\n" + crash, ""}, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pkg := filepath.Join(dir, "pkg")
			require.NoError(t, os.MkdirAll(pkg, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(pkg, "x_test.go"), []byte("package p\n\nfunc FuzzX(f *testing.F) {}\n"), 0o644))
			for i, a := range tt.answers {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "answer"+strconv.Itoa(i+1)), []byte(a), 0o644))
			}
			fakeGo := `#!/usr/bin/env bash
case "$1" in
list) echo "example.com/p ` + pkg + `" ;;
test)
	n=$(( $(cat ` + dir + `/calls 2>/dev/null || echo 0) + 1 ))
	echo $n > ` + dir + `/calls
	out=$(cat ` + dir + `/answer$n)
	[ -z "$out" ] && exit 0
	printf '%b\n' "$out"
	exit 1 ;;
esac
`
			bin := filepath.Join(dir, "bin")
			require.NoError(t, os.MkdirAll(bin, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(bin, "go"), []byte(fakeGo), 0o755))
			cmd := exec.Command("bash", "fuzz.sh", "5s")
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "TMPDIR="+dir)
			out, err := cmd.CombinedOutput()
			if tt.ok {
				require.NoError(t, err, "%s", out)
				require.Contains(t, string(out), "fuzz: all targets passed")
			} else {
				require.Error(t, err, "%s", out)
				require.NotContains(t, string(out), "all targets passed")
			}
			calls, err := os.ReadFile(filepath.Join(dir, "calls"))
			require.NoError(t, err)
			require.Equal(t, strconv.Itoa(tt.calls), strings.TrimSpace(string(calls)), "go test runs: %s", out)
		})
	}
}

// TestGobuildShowsProgress: the build wrapper says what it builds and how
// many packages it needs; a failing build shows the compiler's error and
// fails.
func TestGobuildShowsProgress(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("bash", "gobuild.sh", "a tiny program", "-o", filepath.Join(dir, "ok"), "./testdata/ok")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Regexp(t, `^build: a tiny program \(\./testdata/ok, [0-9]+ packages with the standard library; a first build compiles them all and takes minutes, later ones seconds\)\n`, string(out))
	_, err = os.Stat(filepath.Join(dir, "ok"))
	require.NoError(t, err)

	start := time.Now()
	cmd = exec.Command("bash", "gobuild.sh", "a broken program", "-o", filepath.Join(dir, "broken"), "./testdata/broken")
	out, err = cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "undefined: undefinedCall")
	require.Contains(t, string(out), "build: a broken program failed")
	require.Less(t, time.Since(start), 2*time.Minute)
}
