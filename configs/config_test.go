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
	for _, f := range []string{"secrets/mimir-password", "secrets/thanos-token", "secrets/oauth2-client-secret", "secrets/gcp-service-account.json", "tls/ca.crt", "tls/client.crt", "tls/client.key"} {
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
		{"unknown top-level key names key and line", "global:\n  scrape_interval: 15s\nremote_writes: []\n", "line 3: remote_writes: unknown key (did you mean remote_write?)"},
		{"unknown nested key", "remote_write:\n  - url: http://x/api/v1/write\n    queue_config:\n      max_shard: 3\n", "line 4: remote_write[0].queue_config.max_shard: unknown key (did you mean max_shards?)"},
		{"bad duration", "global:\n  scrape_interval: fifteen\n", `line 2: global.scrape_interval: "fifteen" is not a duration`},
		{"bad integer", "global:\n  concurrency: many\n", `line 2: global.concurrency: "many" is not an integer`},
		{"bad bool", "web:\n  enable_debug: perhaps\n", `line 2: web.enable_debug: "perhaps" is not true or false`},
		{"list for a section", "global: [1, 2]\n", "line 1: global: want a section of key: value lines, got a list"},
		{"scalar for a list", "sandbox_roots: /run/vc/sbs\n", `line 1: sandbox_roots: want a list, got "/run/vc/sbs"`},
		{"repeated key", "global:\n  scrape_interval: 15s\n  scrape_interval: 10s\n", "line 3: global.scrape_interval: key repeated (first at line 2)"},
		{"timeout above interval", "global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n", "line 3: global.scrape_timeout: 10s must be <= scrape_interval 5s"},
		{"bad url", "remote_write:\n  - url: 'ftp://x'\n", "line 2: remote_write[0].url:"},
		{"backoff order", "remote_write:\n  - url: http://x/api/v1/write\n    queue_config: {min_backoff: 10s, max_backoff: 1s}\n", "line 3: remote_write[0].queue_config.max_backoff"},
		{"duplicate names", "remote_write:\n  - {url: 'http://a/w', name: x}\n  - {url: 'http://b/w', name: x}\n", `line 3: remote_write[1].name: "x" already used by remote_write[0]`},
		{"bad relabel", "metric_relabel_configs:\n  - action: replace\n    regex: '('\n", `line 3: metric_relabel_configs[0].regex: "(" is not a valid regular expression (RE2 syntax): missing closing )`},
		{"bad write relabel regex", "remote_write:\n  - url: http://x/w\n    write_relabel_configs: [{regex: '('}]\n", `line 3: remote_write[0].write_relabel_configs[0].regex: "(" is not a valid regular expression (RE2 syntax): missing closing )`},
		{"relative wal dir", "wal:\n  dir: relative/wal\n", `line 2: wal.dir: "relative/wal" is not an absolute path`},
		{"bad relabel action", "metric_relabel_configs:\n  - action: bogus\n", `line 2: metric_relabel_configs[0].action: unknown relabel action "bogus"`},
		{"bad max_size", "wal:\n  max_size: lots\nremote_write:\n  - url: http://x/w\n", `line 2: wal.max_size: size "lots"`},
		{"wal validated without remote_write", "wal:\n  fsync: always\n", `line 2: wal.fsync: "always" must be append or segment`},
		{"relative root", "sandbox_roots: [run/vc/sbs]\n", `line 1: sandbox_roots[0]: "run/vc/sbs" is not an absolute path`},
		{"resync", "sandbox: {resync_interval: 0s}\n", "line 1: sandbox.resync_interval: must be > 0"},
		{"cri endpoint", "cri:\n  endpoint: tcp://x:1\n", `line 2: cri.endpoint: unsupported scheme "tcp"`},
		{"two documents", "global: {}\n---\nglobal: {}\n", "line 2: a second YAML document"},
		{"syntax", "global:\n  - x\n a: b\n", "line 2: syntax error: did not find expected key"},
		{"merge key of the wrong section", "global: &g {scrape_interval: 1s}\nweb: {<<: *g}\n", "line 1: web.scrape_interval: unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tc.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			for _, e := range errs {
				require.NotZero(t, e.Line, "every error of a file names its line: %s", e)
			}
			requireFileTerms(t, err.Error())
		})
	}
}

// requireFileTerms fails on decoder internals in a message: Go type names,
// YAML tags, the decoder's own phrasing, separators of joined errors.
func requireFileTerms(t *testing.T, msg string) {
	t.Helper()
	for _, leak := range []string{"!!", "time.Duration", "model.Duration", "configs.", "remotewrite.", "forwarder.",
		"cannot unmarshal", "not found in type", "unmarshal errors", ":;", "yaml:"} {
		require.NotContains(t, msg, leak)
	}
}

// TestNoEcho: a list item of the wrong kind is reported once, not again as
// the list being empty.
func TestNoEcho(t *testing.T) {
	_, err := Load(strings.NewReader("sandbox_roots: [[/run/vc/sbs]]\n"))
	require.EqualError(t, err, "line 1: sandbox_roots[0]: want a string, got a list")
}

// TestLoadReportsEveryError: one bad value per section, all reported at once
// with their lines, in file order.
func TestLoadReportsEveryError(t *testing.T) {
	const file = `global:
  scrape_interval: fifteen
  scrape_timeot: 5s
wal:
  fsync: always
sandbox_roots: [rel]
sandbox: {resync_interval: 0s}
web: {max_query_bytes: 0}
remote_write:
  - url: ftp://x
  - url: http://y/w
    name: 'a b'
`
	_, err := Load(strings.NewReader(file))
	var errs Errors
	require.ErrorAs(t, err, &errs)
	got := strings.Split(err.Error(), "\n")
	require.Equal(t, []string{
		`line 2: global.scrape_interval: "fifteen" is not a duration (a number and a unit: 500ms, 15s, 1m30s, 2h)`,
		`line 3: global.scrape_timeot: unknown key (did you mean scrape_timeout?)`,
		`line 5: wal.fsync: "always" must be append or segment`,
		`line 6: sandbox_roots[0]: "rel" is not an absolute path`,
		`line 7: sandbox.resync_interval: must be > 0`,
		`line 8: web.max_query_bytes: must be > 0`,
		`line 10: remote_write[0].url: scheme "ftp": must be http or https`,
		`line 12: remote_write[1].name: "a b" must match ^[a-zA-Z0-9_-]+$`,
	}, got)
	require.Len(t, errs, len(got))
}

// TestBadRegexHidesNothing: a relabel regex that does not compile stops
// yaml.v3's decode in relabel's own unmarshaler; it is reported at its key
// and line together with every other problem of the file, including the
// others of its own remote_write entry and relabel rule.
func TestBadRegexHidesNothing(t *testing.T) {
	const file = `global:
  scrape_interval: 1s
  scrape_timeout: 5s
sandbox_roots: [rel]
wal:
  dir: relative/wal
  fsync: always
remote_write:
  - url: ftp://x
    write_relabel_configs: [{regex: "("}]
  - url: http://y/w
    write_relabel_configs: [{action: bogus}]
metric_relabel_configs:
  - action: replace
    regex: "a["
sandbox: {resync_interval: 0s}
`
	_, err := Load(strings.NewReader(file))
	require.Error(t, err)
	require.Equal(t, []string{
		`line 3: global.scrape_timeout: 5s must be <= scrape_interval 1s`,
		`line 4: sandbox_roots[0]: "rel" is not an absolute path`,
		`line 6: wal.dir: "relative/wal" is not an absolute path`,
		`line 7: wal.fsync: "always" must be append or segment`,
		`line 9: remote_write[0].url: scheme "ftp": must be http or https`,
		`line 10: remote_write[0].write_relabel_configs[0].regex: "(" is not a valid regular expression (RE2 syntax): missing closing )`,
		`line 12: remote_write[1].write_relabel_configs[0].action: unknown relabel action "bogus"`,
		`line 14: metric_relabel_configs[0]: relabel configuration for replace action requires 'target_label' value`,
		`line 15: metric_relabel_configs[0].regex: "a[" is not a valid regular expression (RE2 syntax): missing closing ]`,
		`line 16: sandbox.resync_interval: must be > 0`,
	}, strings.Split(err.Error(), "\n"))
	requireFileTerms(t, err.Error())
}

// TestLoadReportsEverySectionError: a section with several problems
// reports each at its own key and line, not only the first.
func TestLoadReportsEverySectionError(t *testing.T) {
	const file = `global:
  scrape_interval: 1s
  scrape_timeout: 5s
  concurrency: 0
  external_labels:
    __name__: x
`
	_, err := Load(strings.NewReader(file))
	require.Error(t, err)
	require.Equal(t, []string{
		`line 3: global.scrape_timeout: 5s must be <= scrape_interval 1s`,
		`line 4: global.concurrency: must be > 0`,
		`line 6: global.external_labels.__name__: invalid label name "__name__"`,
	}, strings.Split(err.Error(), "\n"))
}

// FuzzLoad: any input is either a valid config or Errors, never a panic:
// each problem says something, problems come in file order (by line, those
// without one last), a line is one of the input's, and the same input
// gives the same errors again.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("examples/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(string(b))
	}
	f.Add("global: {scrape_interval: -1s}\n")
	f.Add("remote_write: [{url: 'http://[::1'}]\n")
	f.Add("remote_write: [{url: 'ftp://x', write_relabel_configs: [{regex: '('}]}]\nwal: {dir: rel}\n")
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := Load(strings.NewReader(s))
		if err == nil {
			require.NoError(t, cfg.Validate())
			return
		}
		var errs Errors
		require.ErrorAs(t, err, &errs, "%q", s)
		require.NotEmpty(t, errs)
		// YAML breaks lines at \n, \r\n and \r.
		lines := 1 + strings.Count(strings.ReplaceAll(s, "\r\n", "\n"), "\n") + strings.Count(strings.ReplaceAll(s, "\r\n", "\n"), "\r")
		for i, e := range errs {
			require.NotEmpty(t, e.Msg, "%q: %v", s, err)
			require.True(t, e.Line >= 0 && e.Line <= lines, "%q has %d lines: %v", s, lines, err)
			if i > 0 {
				p := errs[i-1]
				require.True(t, e.Line == 0 || (p.Line != 0 && p.Line <= e.Line), "%q: out of file order: %v", s, err)
			}
		}
		_, again := Load(strings.NewReader(s))
		require.EqualError(t, again, err.Error(), "%q", s)
	})
}

func TestExternalLabelsFromEnvironment(t *testing.T) {
	t.Setenv("KM_TEST_NODE", "worker-7")
	cfg, err := Load(strings.NewReader("global:\n  external_labels: {node: '${KM_TEST_NODE}', site: 'lyon-$KM_TEST_NODE', fixed: x}\n"))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"node": "worker-7", "site": "lyon-worker-7", "fixed": "x"}, cfg.Global.ExternalLabels)

	_, err = Load(strings.NewReader("global:\n  external_labels: {node: '${KM_TEST_UNSET_VAR}'}\n"))
	require.ErrorContains(t, err, "line 2: global.external_labels.node: environment variable KM_TEST_UNSET_VAR is not set")
}
