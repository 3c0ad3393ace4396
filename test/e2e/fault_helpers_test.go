package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Helpers of the sources, listener and security fault suite
// (fault_sources_test.go, security_test.go, fault_load_test.go).

// faultResult logs one line of the fault table in docs/faults.md.
func faultResult(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("FAULT-RESULT: %s: %s", t.Name(), fmt.Sprintf(format, args...))
}

// configFile writes a kata-monitor config file and returns its path.
func configFile(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kata-monitor.yaml")
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
	return p
}

// pullConfig is a pull-only config with a short scrape timeout, so a fault
// costs about a second per round, and extra YAML appended.
func pullConfig(t *testing.T, timeout, maxAge time.Duration, extra string) string {
	t.Helper()
	return configFile(t, fmt.Sprintf("global:\n  scrape_interval: 5s\n  scrape_timeout: %s\n  snapshot_max_age: %s\nshim:\n  timeout: %s\n%s",
		timeout, maxAge, timeout, extra))
}

// procStatusKiB reads a "Field:  N kB" line of /proc/<pid>/status.
func (m *monitor) procStatusKiB(t *testing.T, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", m.proc.Pid()))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		require.NoError(t, err)
		return v
	}
	t.Fatalf("no %s in /proc status", field)
	return 0
}

// timedGet is get plus how long it took.
func (m *monitor) timedGet(path string) (int, string, time.Duration) {
	began := time.Now()
	code, body := m.get(path, nil)
	return code, body, time.Since(began)
}

// seriesLines returns the lines of family name (exact) carrying
// sandbox_id="id" in a text exposition.
func seriesLines(body, name, id string) []string {
	var out []string
	want := `sandbox_id="` + id + `"`
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, want) {
			out = append(out, line)
		}
	}
	return out
}

// rawRequest sends req verbatim over a new TCP connection and returns the
// status code of the answer (0 if the server closed without one).
func rawRequest(t *testing.T, addr, req string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	if _, err := c.Write([]byte(req)); err != nil {
		return 0 // the server may close while a huge request is being written
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	code, _ := strconv.Atoi(f[1])
	return code
}

// hexID is a sandbox id (64 hex) outside fakenode's sequence.
func hexID(prefix string, i int) string {
	s := fmt.Sprintf("%s%08x", prefix, i)
	return s + strings.Repeat("0", 64-len(s))
}
