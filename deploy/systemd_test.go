package deploy

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const unitFile = "systemd/kata-monitor.service"

// parseUnit reads a systemd unit into section -> key -> values (a key may
// repeat). Comments and blank lines are skipped; the unit uses no line
// continuations.
func parseUnit(t *testing.T, data []byte) map[string]map[string][]string {
	t.Helper()
	unit := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "line %d: not key=value: %q", n, line)
			require.NotEmpty(t, section, "line %d: key outside a section", n)
			require.False(t, strings.HasSuffix(line, `\`), "line %d: continuation lines are not parsed", n)
			unit[section][k] = append(unit[section][k], v)
		}
	}
	require.NoError(t, sc.Err())
	return unit
}

func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile(unitFile)
	require.NoError(t, err)
	unit := parseUnit(t, data)

	want := []struct{ section, key, value string }{
		{"Unit", "After", "network-online.target containerd.service"},
		{"Service", "ExecStart", "/usr/local/bin/kata-monitor --config=/etc/kata-monitor/config.yaml $KATA_MONITOR_OPTS"},
		{"Service", "EnvironmentFile", "-/etc/default/kata-monitor"},
		{"Service", "Restart", "on-failure"},
		{"Service", "TimeoutStopSec", "30"},
		{"Service", "StateDirectory", "kata-monitor"},
		{"Service", "ReadWritePaths", "/var/lib/kata-monitor"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "PrivateTmp", "yes"},
		{"Service", "ProtectKernelTunables", "yes"},
		{"Service", "ProtectKernelModules", "yes"},
		{"Service", "ProtectControlGroups", "yes"},
		{"Service", "RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"},
		{"Service", "LockPersonality", "yes"},
		{"Service", "MemoryDenyWriteExecute", "yes"},
		{"Service", "RestrictRealtime", "yes"},
		{"Service", "SystemCallArchitectures", "native"},
		{"Service", "CapabilityBoundingSet", ""},
		{"Service", "MemoryMax", "512M"},
		{"Install", "WantedBy", "multi-user.target"},
	}
	for _, w := range want {
		t.Run(w.section+"."+w.key, func(t *testing.T) {
			got := unit[w.section][w.key]
			require.Equal(t, []string{w.value}, got)
		})
	}

	t.Run("env file defines KATA_MONITOR_OPTS", func(t *testing.T) {
		env, err := os.ReadFile("systemd/kata-monitor.default")
		require.NoError(t, err)
		require.Regexp(t, `(?m)^KATA_MONITOR_OPTS=`, string(env))
	})
	t.Run("WAL of the host config is writable", func(t *testing.T) {
		cfg, err := os.ReadFile("systemd/config.yaml")
		require.NoError(t, err)
		require.Contains(t, string(cfg), "dir: /var/lib/kata-monitor/wal")
	})
}

// TestSystemdAnalyzeVerify runs systemd's own checker on the unit. The
// binary is not installed here, so a copy whose ExecStart is /bin/true is
// verified; any complaint about kata-monitor's unit fails the test.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skipf("systemd-analyze not on PATH: %v", err)
	}
	data, err := os.ReadFile(unitFile)
	require.NoError(t, err)
	const bin = "/usr/local/bin/kata-monitor "
	require.Contains(t, string(data), "ExecStart="+bin)

	tests := []struct {
		name    string
		edit    func(string) string
		wantBad bool
	}{
		{name: "as shipped", edit: func(s string) string { return s }},
		// Proves the check can fail: systemd-analyze reports unknown keys
		// on stderr with exit status 0.
		{name: "unknown key", edit: func(s string) string {
			return strings.Replace(s, "[Service]\n", "[Service]\nProtectSytem=strict\n", 1)
		}, wantBad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			unit := strings.Replace(tc.edit(string(data)), "ExecStart="+bin, "ExecStart=/bin/true ", 1)
			p := filepath.Join(t.TempDir(), "kata-monitor.service")
			require.NoError(t, os.WriteFile(p, []byte(unit), 0o644))

			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, analyze, "verify", p).CombinedOutput()
			var bad []string
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if strings.Contains(line, "kata-monitor") {
					bad = append(bad, line)
				} else if line != "" {
					t.Logf("ignored (not about this unit): %s", line)
				}
			}
			if tc.wantBad {
				require.NotEmpty(t, bad, "systemd-analyze found nothing; output: %s", out)
				return
			}
			require.NoError(t, err, "systemd-analyze verify: %s", out)
			require.Empty(t, bad)
		})
	}
}
