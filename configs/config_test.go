package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestExamples loads every shipped example. Secret and TLS files they name
// under /etc/kata-monitor are created in a temp dir first.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 6)
	etc := t.TempDir()
	for _, f := range []string{"secrets/mimir-password", "secrets/thanos-token", "tls/ca.crt", "tls/client.crt", "tls/client.key"} {
		require.NoError(t, os.MkdirAll(filepath.Join(etc, filepath.Dir(f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(etc, f), []byte("x\n"), 0o600))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			text := strings.ReplaceAll(string(raw), "/etc/kata-monitor/", etc+"/")
			cfg, err := Load(strings.NewReader(text))
			require.NoError(t, err)
			for _, rw := range cfg.RemoteWrite {
				require.NotEmpty(t, rw.Name)
				require.NotEmpty(t, rw.URL)
			}
		})
	}
}

func TestDefaultIsPullOnly(t *testing.T) {
	cfg, err := Load(strings.NewReader(""))
	require.NoError(t, err)
	require.Empty(t, cfg.RemoteWrite)
	require.Equal(t, []string{"/run/vc/sbs", "/run/kata"}, cfg.SandboxRoots)
	require.Equal(t, 15*time.Second, cfg.Global.ScrapeInterval)
	require.Equal(t, "/run/containerd/containerd.sock", cfg.CRI.Endpoint)
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown top-level key names key and line", "global:\n  scrape_interval: 15s\nremote_writes: []\n", "line 3: field remote_writes not found"},
		{"unknown nested key", "remote_write:\n  - url: http://x/api/v1/write\n    queue_config:\n      max_shard: 3\n", "line 4: field max_shard not found"},
		{"bad duration", "global:\n  scrape_interval: soon\n", "line 2"},
		{"timeout above interval", "global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n", "global.scrape_timeout"},
		{"bad url", "remote_write:\n  - url: 'ftp://x'\n", "remote_write[0].url"},
		{"backoff order", "remote_write:\n  - url: http://x/api/v1/write\n    queue_config: {min_backoff: 10s, max_backoff: 1s}\n", "remote_write[0].queue_config.max_backoff"},
		{"duplicate names", "remote_write:\n  - {url: 'http://a/w', name: x}\n  - {url: 'http://b/w', name: x}\n", `remote_write[1].name: "x" already used`},
		{"bad relabel", "metric_relabel_configs:\n  - action: replace\n    regex: '('\n", "missing closing )"},
		{"bad max_size", "wal:\n  max_size: lots\nremote_write:\n  - url: http://x/w\n", "line 2"},
		{"relative root", "sandbox_roots: [run/vc/sbs]\n", "sandbox_roots[0]"},
		{"resync", "sandbox: {resync_interval: 0s}\n", "sandbox.resync_interval"},
		{"two documents", "global: {}\n---\nglobal: {}\n", "more than one YAML document"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tc.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// FuzzLoad: any input is either a config or an error, never a panic.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("examples/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(string(b))
	}
	f.Add("global: {scrape_interval: -1s}\n")
	f.Add("remote_write: [{url: 'http://[::1'}]\n")
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := Load(strings.NewReader(s))
		if err == nil {
			require.NoError(t, cfg.Validate())
		}
	})
}

func TestExternalLabelsFromEnvironment(t *testing.T) {
	t.Setenv("KM_TEST_NODE", "worker-7")
	cfg, err := Load(strings.NewReader("global:\n  external_labels: {node: '${KM_TEST_NODE}', site: 'lyon-$KM_TEST_NODE', fixed: x}\n"))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"node": "worker-7", "site": "lyon-worker-7", "fixed": "x"}, cfg.Global.ExternalLabels)

	_, err = Load(strings.NewReader("global:\n  external_labels: {node: '${KM_TEST_UNSET_VAR}'}\n"))
	require.ErrorContains(t, err, "global.external_labels.node: environment variable KM_TEST_UNSET_VAR is not set")
}
