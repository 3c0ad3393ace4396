package remotewrite

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/relabel"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in      string
		want    Bytes
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "1024", want: 1024},
		{in: "64KiB", want: 64 << 10},
		{in: "512MiB", want: 512 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "100MB", want: 100e6},
		{in: "1kb", want: 1000},
		{in: "1.5GiB", want: 3 << 29},
		{in: "0.5KB", want: 500},
		{in: " 10 MiB ", want: 10 << 20},
		{in: "7B", want: 7},
		{in: "", wantErr: "want a number"},
		{in: "MiB", wantErr: "want a number"},
		{in: "-1", wantErr: "want a number"},
		{in: "10XB", wantErr: "unknown unit"},
		{in: "1.2.3MiB", wantErr: "malformed"},
		{in: "1.MiB", wantErr: "malformed"},
		{in: ".5MiB", wantErr: "malformed"},
		{in: "0.5B", wantErr: "whole number"},
		{in: "9223372036854775807", want: 9223372036854775807},
		{in: "9223372036854775808", wantErr: "out of range"},
		{in: "9000000TiB", wantErr: "too large"},
		{in: "8388607.5TiB", want: 1<<63 - 1<<39},
		{in: "8388608TiB", wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBytes(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			back, err := ParseBytes(got.String())
			require.NoError(t, err)
			require.Equal(t, got, back, "String() %q must round-trip", got.String())
		})
	}
}

func TestBytesYAML(t *testing.T) {
	var v struct {
		Size Bytes `yaml:"size"`
	}
	require.NoError(t, yaml.Unmarshal([]byte("size: 512MiB\n"), &v))
	require.Equal(t, Bytes(512<<20), v.Size)
	require.NoError(t, yaml.Unmarshal([]byte("size: 4096\n"), &v))
	require.Equal(t, Bytes(4096), v.Size)
	require.ErrorContains(t, yaml.Unmarshal([]byte("size: [1]\n"), &v), "scalar")
	require.ErrorContains(t, yaml.Unmarshal([]byte("size: lots\n"), &v), "want a number")
	out, err := yaml.Marshal(struct {
		Size Bytes `yaml:"size"`
	}{Size: 1 << 30})
	require.NoError(t, err)
	require.Equal(t, "size: 1GiB\n", string(out))
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"1GiB", "512MiB", "100MB", "1.5GiB", "0", "9223372036854775807", "1.2.3", "-5KiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBytes(s)
		if err != nil {
			return
		}
		if b < 0 {
			t.Fatalf("ParseBytes(%q) = %d, negative", s, b)
		}
		back, err := ParseBytes(b.String())
		if err != nil || back != b {
			t.Fatalf("round trip of %q: %d -> %q -> %d, %v", s, b, b.String(), back, err)
		}
	})
}

func TestApplyDefaults(t *testing.T) {
	c := Config{URL: "http://example.com/api/v1/write", QueueConfig: QueueConfig{MaxShards: 3}}
	c.ApplyDefaults()
	require.Len(t, c.Name, 6)
	require.Equal(t, 3, c.QueueConfig.MaxShards, "explicit values are kept")
	require.Equal(t, 2000, c.QueueConfig.MaxSamplesPerSend)
	require.Equal(t, 30*time.Second, c.RemoteTimeout)
	require.True(t, *c.QueueConfig.RetryOnHTTP429)
	require.True(t, *c.MetadataConfig.Send)
	require.NoError(t, c.Validate())

	// Name is stable for a URL and differs between URLs.
	c2 := Config{URL: c.URL}
	c2.ApplyDefaults()
	require.Equal(t, c.Name, c2.Name)
	c3 := Config{URL: "http://other/api/v1/write"}
	c3.ApplyDefaults()
	require.NotEqual(t, c.Name, c3.Name)

	// A legal false survives defaults.
	no := false
	c4 := Config{URL: c.URL, QueueConfig: QueueConfig{RetryOnHTTP429: &no}}
	c4.ApplyDefaults()
	require.False(t, *c4.QueueConfig.RetryOnHTTP429)
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte("s3cret"), 0o600))
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string // "" means valid
	}{
		{name: "defaults are valid", mutate: func(*Config) {}},
		{name: "url empty", mutate: func(c *Config) { c.URL = "" }, wantErr: "url: must be set"},
		{name: "url scheme", mutate: func(c *Config) { c.URL = "ftp://h/x" }, wantErr: "url: scheme"},
		{name: "url host", mutate: func(c *Config) { c.URL = "http:///x" }, wantErr: "url: must have a host"},
		{name: "url parse", mutate: func(c *Config) { c.URL = "http://h/%zz" }, wantErr: "url: parse"},
		{name: "name chars", mutate: func(c *Config) { c.Name = "../etc" }, wantErr: "name:"},
		{name: "name empty", mutate: func(c *Config) { c.Name = "" }, wantErr: "name:"},
		{name: "remote timeout", mutate: func(c *Config) { c.RemoteTimeout = -1 }, wantErr: "remote_timeout:"},
		{name: "header content-type", mutate: func(c *Config) { c.Headers = map[string]string{"content-type": "x"} }, wantErr: "headers:"},
		{name: "header authorization", mutate: func(c *Config) { c.Headers = map[string]string{"Authorization": "x"} }, wantErr: "headers:"},
		{name: "header rw version", mutate: func(c *Config) { c.Headers = map[string]string{"X-Prometheus-Remote-Write-Version": "2"} }, wantErr: "headers:"},
		{name: "header user agent allowed", mutate: func(c *Config) { c.Headers = map[string]string{"User-Agent": "me", "X-Scope-OrgID": "t1"} }},
		{name: "header bad name", mutate: func(c *Config) { c.Headers = map[string]string{"a b": "x"} }, wantErr: "headers: invalid"},
		{name: "basic and authorization", mutate: func(c *Config) {
			c.BasicAuth = &BasicAuth{Username: "u"}
			c.Authorization = &Authorization{Credentials: "t"}
		}, wantErr: "basic_auth: at most one"},
		{name: "basic password twice", mutate: func(c *Config) {
			c.BasicAuth = &BasicAuth{Username: "u", Password: "p", PasswordFile: secretFile}
		}, wantErr: "basic_auth.password_file: at most one"},
		{name: "basic password file missing", mutate: func(c *Config) {
			c.BasicAuth = &BasicAuth{Username: "u", PasswordFile: missing}
		}, wantErr: "basic_auth.password_file: open"},
		{name: "basic username file missing", mutate: func(c *Config) {
			c.BasicAuth = &BasicAuth{UsernameFile: missing}
		}, wantErr: "basic_auth.username_file: open"},
		{name: "basic from file ok", mutate: func(c *Config) {
			c.BasicAuth = &BasicAuth{Username: "u", PasswordFile: secretFile}
		}},
		{name: "authorization basic type", mutate: func(c *Config) {
			c.Authorization = &Authorization{Type: "Basic", Credentials: "x"}
		}, wantErr: "authorization.type:"},
		{name: "authorization credentials twice", mutate: func(c *Config) {
			c.Authorization = &Authorization{Credentials: "x", CredentialsFile: secretFile}
		}, wantErr: "authorization.credentials_file: at most one"},
		{name: "authorization file missing", mutate: func(c *Config) {
			c.Authorization = &Authorization{CredentialsFile: missing}
		}, wantErr: "authorization.credentials_file: open"},
		{name: "tls ca missing", mutate: func(c *Config) { c.TLSConfig.CAFile = missing }, wantErr: "tls_config.ca_file: open"},
		{name: "tls cert without key", mutate: func(c *Config) { c.TLSConfig.CertFile = secretFile }, wantErr: "tls_config.cert_file:"},
		{name: "tls min version", mutate: func(c *Config) { c.TLSConfig.MinVersion = "SSL3" }, wantErr: "tls_config.min_version:"},
		{name: "tls min version ok", mutate: func(c *Config) { c.TLSConfig.MinVersion = "TLS12" }},
		{name: "proxy scheme", mutate: func(c *Config) { c.ProxyURL = "ftp://proxy:1" }, wantErr: "proxy_url: scheme"},
		{name: "proxy ok", mutate: func(c *Config) { c.ProxyURL = "socks5://proxy:1080" }},
		{name: "relabel invalid", mutate: func(c *Config) {
			c.WriteRelabelConfigs = []*relabel.Config{{Action: relabel.Replace, Regex: relabel.MustNewRegexp("(.*)"), Replacement: "$1"}}
		}, wantErr: "write_relabel_configs[0]:"},
		{name: "relabel nil", mutate: func(c *Config) { c.WriteRelabelConfigs = []*relabel.Config{nil} }, wantErr: "write_relabel_configs[0]: empty"},
		{name: "capacity", mutate: func(c *Config) { c.QueueConfig.Capacity = -1 }, wantErr: "queue_config.capacity:"},
		{name: "max shards", mutate: func(c *Config) { c.QueueConfig.MaxShards = -1 }, wantErr: "queue_config.max_shards:"},
		{name: "min shards", mutate: func(c *Config) { c.QueueConfig.MinShards = -1 }, wantErr: "queue_config.min_shards:"},
		{name: "max samples", mutate: func(c *Config) { c.QueueConfig.MaxSamplesPerSend = -5 }, wantErr: "queue_config.max_samples_per_send:"},
		{name: "batch deadline", mutate: func(c *Config) { c.QueueConfig.BatchSendDeadline = -1 }, wantErr: "queue_config.batch_send_deadline:"},
		{name: "min backoff", mutate: func(c *Config) { c.QueueConfig.MinBackoff = -1 }, wantErr: "queue_config.min_backoff:"},
		{name: "max below min backoff", mutate: func(c *Config) {
			c.QueueConfig.MinBackoff, c.QueueConfig.MaxBackoff = time.Second, time.Millisecond
		}, wantErr: "queue_config.max_backoff: below min_backoff"},
		{name: "metadata interval", mutate: func(c *Config) { c.MetadataConfig.SendInterval = -1 }, wantErr: "metadata_config.send_interval:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{URL: "https://receiver.example:9090/api/v1/write"}
			c.ApplyDefaults()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				_, err := c.httpClientConfig()
				require.NoError(t, err, "a valid config converts")
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestWALConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*WALConfig)
		wantErr string
	}{
		{name: "defaults", mutate: func(*WALConfig) {}},
		{name: "dir", mutate: func(c *WALConfig) { c.Dir = "" }, wantErr: "dir:"},
		{name: "max size", mutate: func(c *WALConfig) { c.MaxSize = 1000 }, wantErr: "max_size:"},
		{name: "fsync", mutate: func(c *WALConfig) { c.Fsync = "always" }, wantErr: "fsync:"},
		{name: "fsync segment", mutate: func(c *WALConfig) { c.Fsync = "segment" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultWALConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestSecretsNeverShown(t *testing.T) {
	const pw, tok = "hunter2-password", "tok3n-credential"
	c := Config{
		URL:           "http://h/api/v1/write",
		BasicAuth:     &BasicAuth{Username: "user", Password: pw},
		Authorization: &Authorization{Credentials: tok},
	}
	c.ApplyDefaults()
	y, err := yaml.Marshal(c)
	require.NoError(t, err)
	j, err := json.Marshal(c)
	require.NoError(t, err)
	for name, out := range map[string]string{
		"fmt %v":  fmt.Sprintf("%v", c),
		"fmt %+v": fmt.Sprintf("%+v", c),
		"fmt %#v": fmt.Sprintf("%#v", c),
		"ptr %v":  fmt.Sprintf("%v %v", *c.BasicAuth, *c.Authorization),
		"yaml":    string(y),
		"json":    string(j),
		"secret":  c.BasicAuth.Password.String(),
	} {
		t.Run(name, func(t *testing.T) {
			require.NotContains(t, out, pw)
			require.NotContains(t, out, tok)
		})
	}
	require.Contains(t, string(y), secretMask)
	require.True(t, strings.Contains(string(y), "username: user"), "non-secrets stay visible")
}

// TestDecodePrometheusBlock decodes a remote_write entry as a user would
// paste it from prometheus.yml, strictly, as package configs does.
func TestDecodePrometheusBlock(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tok, []byte("t"), 0o600))
	doc := `
url: https://mimir.example/api/v1/push
remote_timeout: 10s
headers:
  X-Scope-OrgID: team-a
authorization:
  credentials_file: ` + tok + `
tls_config:
  insecure_skip_verify: false
  min_version: TLS12
write_relabel_configs:
  - source_labels: [__name__]
    regex: kata_shim_go_.*
    action: drop
  - target_label: node
    replacement: worker-1
queue_config:
  capacity: 2500
  max_shards: 4
  min_shards: 1
  max_samples_per_send: 500
  batch_send_deadline: 5s
  min_backoff: 50ms
  max_backoff: 10s
  retry_on_http_429: false
metadata_config:
  send: false
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&c))
	c.ApplyDefaults()
	require.NoError(t, c.Validate())
	require.Equal(t, 10*time.Second, c.RemoteTimeout)
	require.Equal(t, 500, c.QueueConfig.MaxSamplesPerSend)
	require.Equal(t, 50*time.Millisecond, c.QueueConfig.MinBackoff)
	require.False(t, *c.QueueConfig.RetryOnHTTP429)
	require.False(t, *c.MetadataConfig.Send)
	require.Equal(t, "Bearer", c.Authorization.Type)
	require.Len(t, c.WriteRelabelConfigs, 2)
	require.Equal(t, relabel.Drop, c.WriteRelabelConfigs[0].Action)
	require.Equal(t, relabel.Replace, c.WriteRelabelConfigs[1].Action, "relabel defaults applied")

	dec = yaml.NewDecoder(strings.NewReader("url: http://x/w\nqueue_config:\n  max_shard: 3\n"))
	dec.KnownFields(true)
	require.ErrorContains(t, dec.Decode(&Config{}), "max_shard")
}
