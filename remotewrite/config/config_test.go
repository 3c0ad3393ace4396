package config

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/storage/remote/azuread"
	"github.com/prometheus/prometheus/storage/remote/googleiam"
	"github.com/prometheus/sigv4"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
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
		{in: "1kB", want: 1000},
		{in: "1KB", want: 1000},
		{in: "1.5GiB", want: 3 << 29},
		{in: "0.5kB", want: 500},
		{in: "1GiB512MiB", want: 3 << 29},
		{in: " 10MiB ", want: 10 << 20},
		{in: "7B", want: 7},
		{in: "", wantErr: "want a number"},
		{in: "MiB", wantErr: "want a number"},
		{in: "-1", wantErr: "negative"},
		{in: "-1KiB", wantErr: "negative"},
		{in: "10XB", wantErr: "unknown unit"},
		{in: "1mib", wantErr: "unknown unit"},
		{in: "9223372036854775807", wantErr: "too large"},
		{in: "9223372036854775808", wantErr: "out of range"},
		{in: "9000000TiB", wantErr: "9000000TiB"}, // units reports the overflow as an unknown unit
		{in: "8PiB", want: 1 << 53},
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
	require.ErrorContains(t, yaml.Unmarshal([]byte("size: lots\n"), &v), "line 1")
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
	require.Equal(t, model.Duration(30*time.Second), c.RemoteTimeout)
	require.True(t, *c.QueueConfig.RetryOnHTTP429)
	require.True(t, *c.MetadataConfig.Send)
	require.False(t, c.HTTPClientConfig.FollowRedirects, "kata-monitor does not follow redirects by default")
	require.False(t, c.HTTPClientConfig.EnableHTTP2, "as Prometheus's remote_write")
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

	c5 := Config{URL: c.URL, HTTPClientConfig: commoncfg.HTTPClientConfig{Authorization: &commoncfg.Authorization{Credentials: "x"}}}
	c5.ApplyDefaults()
	require.Equal(t, "Bearer", c5.HTTPClientConfig.Authorization.Type)
}

// TestConfigValidate: every rule of Validate, each a row naming the key
// path its error must start with. Long for its table, one row per rule.
func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte("s3cret"), 0o600))
	missing := filepath.Join(dir, "missing")
	basic := func(c *Config) *commoncfg.BasicAuth {
		c.HTTPClientConfig.BasicAuth = &commoncfg.BasicAuth{Username: "u"}
		return c.HTTPClientConfig.BasicAuth
	}
	authz := func(c *Config) *commoncfg.Authorization {
		c.HTTPClientConfig.Authorization = &commoncfg.Authorization{Type: "Bearer"}
		return c.HTTPClientConfig.Authorization
	}
	oauth := func(c *Config) *commoncfg.OAuth2 {
		c.HTTPClientConfig.OAuth2 = &commoncfg.OAuth2{ClientID: "id", TokenURL: "https://auth.example/token"}
		return c.HTTPClientConfig.OAuth2
	}
	tlsc := func(c *Config) *commoncfg.TLSConfig { return &c.HTTPClientConfig.TLSConfig }
	proxy := func(raw string) commoncfg.URL {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		return commoncfg.URL{URL: u}
	}
	const uuid = "00000000-0000-0000-0000-000000000001"

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
		{name: "url VictoriaMetrics import", mutate: func(c *Config) { c.URL = "http://vm:8428/api/v1/import" }, wantErr: `url: path "/api/v1/import" is VictoriaMetrics's import API, not remote write`},
		{name: "url VictoriaMetrics import/prometheus", mutate: func(c *Config) { c.URL = "http://vm:8428/api/v1/import/prometheus" }, wantErr: `url: path "/api/v1/import/prometheus" is VictoriaMetrics's import API`},
		{name: "url influx write", mutate: func(c *Config) { c.URL = "http://vm:8428/influx/write" }, wantErr: `url: path "/influx/write" is an InfluxDB line-protocol write`},
		{name: "name chars", mutate: func(c *Config) { c.Name = "../etc" }, wantErr: "name:"},
		{name: "name empty", mutate: func(c *Config) { c.Name = "" }, wantErr: "name:"},
		{name: "remote timeout", mutate: func(c *Config) { c.RemoteTimeout = -1 }, wantErr: "remote_timeout:"},
		{name: "header content-type", mutate: func(c *Config) { c.Headers = map[string]string{"content-type": "x"} }, wantErr: "headers:"},
		{name: "header authorization", mutate: func(c *Config) { c.Headers = map[string]string{"Authorization": "x"} }, wantErr: "headers:"},
		{name: "header rw version", mutate: func(c *Config) { c.Headers = map[string]string{"X-Prometheus-Remote-Write-Version": "2"} }, wantErr: "headers:"},
		{name: "header user agent allowed", mutate: func(c *Config) { c.Headers = map[string]string{"User-Agent": "me", "X-Scope-OrgID": "t1"} }},
		{name: "header bad name", mutate: func(c *Config) { c.Headers = map[string]string{"a b": "x"} }, wantErr: "headers: invalid"},
		{name: "http_headers reserved", mutate: func(c *Config) {
			c.HTTPClientConfig.HTTPHeaders = &commoncfg.Headers{Headers: map[string]commoncfg.Header{"Authorization": {Values: []string{"x"}}}}
		}, wantErr: "http_headers:"},
		{name: "http_headers file missing", mutate: func(c *Config) {
			c.HTTPClientConfig.HTTPHeaders = &commoncfg.Headers{Headers: map[string]commoncfg.Header{"X-Token": {Files: []string{missing}}}}
		}, wantErr: "http_headers.X-Token.files: open"},
		{name: "http_headers ok", mutate: func(c *Config) {
			c.HTTPClientConfig.HTTPHeaders = &commoncfg.Headers{Headers: map[string]commoncfg.Header{"X-Token": {Files: []string{secretFile}, Values: []string{"a"}}}}
		}},

		// One authentication block, as Prometheus's validateAuthConfigs.
		{name: "basic and authorization", mutate: func(c *Config) { basic(c); authz(c).Credentials = "t" },
			wantErr: "authorization: at most one of basic_auth, authorization, oauth2, sigv4, azuread and google_iam may be set (found basic_auth and authorization)"},
		{name: "oauth2 and sigv4", mutate: func(c *Config) { oauth(c); c.SigV4Config = &sigv4.SigV4Config{Region: "eu-west-1"} },
			wantErr: "sigv4: at most one of"},
		{name: "sigv4 and azuread", mutate: func(c *Config) {
			c.SigV4Config = &sigv4.SigV4Config{Region: "eu-west-1"}
			c.AzureADConfig = &azuread.AzureADConfig{ManagedIdentity: &azuread.ManagedIdentityConfig{ClientID: uuid}}
		}, wantErr: "azuread: at most one of"},
		{name: "azuread and google_iam", mutate: func(c *Config) {
			c.AzureADConfig = &azuread.AzureADConfig{ManagedIdentity: &azuread.ManagedIdentityConfig{ClientID: uuid}}
			c.GoogleIAMConfig = &googleiam.Config{}
		}, wantErr: "google_iam: at most one of"},
		{name: "bearer_token and basic", mutate: func(c *Config) { basic(c); c.HTTPClientConfig.BearerToken = "x" }, wantErr: "bearer_token: at most one of"},

		{name: "basic password twice", mutate: func(c *Config) { b := basic(c); b.Password, b.PasswordFile = "p", secretFile },
			wantErr: "basic_auth.password_file: at most one of password and password_file"},
		{name: "basic username twice", mutate: func(c *Config) { basic(c).UsernameFile = secretFile },
			wantErr: "basic_auth.username_file: at most one of username and username_file"},
		{name: "basic password file missing", mutate: func(c *Config) { basic(c).PasswordFile = missing }, wantErr: "basic_auth.password_file: open"},
		{name: "basic username file missing", mutate: func(c *Config) { b := basic(c); b.Username, b.UsernameFile = "", missing },
			wantErr: "basic_auth.username_file: open"},
		{name: "basic password ref", mutate: func(c *Config) { basic(c).PasswordRef = "vault" }, wantErr: "basic_auth.password_ref: secret references need a secret manager"},
		{name: "basic from file ok", mutate: func(c *Config) { basic(c).PasswordFile = secretFile }},
		{name: "authorization basic type", mutate: func(c *Config) { a := authz(c); a.Type, a.Credentials = "Basic", "x" }, wantErr: "authorization.type:"},
		{name: "authorization credentials twice", mutate: func(c *Config) { a := authz(c); a.Credentials, a.CredentialsFile = "x", secretFile },
			wantErr: "authorization.credentials_file: at most one"},
		{name: "authorization file missing", mutate: func(c *Config) { authz(c).CredentialsFile = missing }, wantErr: "authorization.credentials_file: open"},
		{name: "bearer_token_file missing", mutate: func(c *Config) { c.HTTPClientConfig.BearerTokenFile = missing }, wantErr: "bearer_token_file: open"},

		{name: "oauth2 ok", mutate: func(c *Config) { oauth(c).ClientSecretFile = secretFile }},
		{name: "oauth2 client_id", mutate: func(c *Config) { oauth(c).ClientID = "" }, wantErr: "oauth2.client_id: must be set"},
		{name: "oauth2 token_url", mutate: func(c *Config) { oauth(c).TokenURL = "" }, wantErr: "oauth2.token_url: must be set"},
		{name: "oauth2 token_url scheme", mutate: func(c *Config) { oauth(c).TokenURL = "file:///etc/passwd" }, wantErr: "oauth2.token_url: scheme"},
		{name: "oauth2 secret twice", mutate: func(c *Config) { o := oauth(c); o.ClientSecret, o.ClientSecretFile = "s", secretFile },
			wantErr: "oauth2.client_secret_file: at most one"},
		{name: "oauth2 secret file missing", mutate: func(c *Config) { oauth(c).ClientSecretFile = missing }, wantErr: "oauth2.client_secret_file: open"},
		{name: "oauth2 tls ca missing", mutate: func(c *Config) { oauth(c).TLSConfig.CAFile = missing }, wantErr: "oauth2.tls_config.ca_file: open"},
		{name: "oauth2 proxy scheme", mutate: func(c *Config) { oauth(c).ProxyURL = proxy("ftp://p:1") }, wantErr: "oauth2.proxy_url: scheme"},

		{name: "tls ca missing", mutate: func(c *Config) { tlsc(c).CAFile = missing }, wantErr: "tls_config.ca_file: open"},
		{name: "tls cert without key", mutate: func(c *Config) { tlsc(c).CertFile = secretFile }, wantErr: "tls_config.cert_file:"},
		{name: "tls ca twice", mutate: func(c *Config) { tlsc(c).CA, tlsc(c).CAFile = "pem", secretFile }, wantErr: "tls_config.ca_file: at most one of ca and ca_file"},
		{name: "tls ref", mutate: func(c *Config) { tlsc(c).CARef = "x" }, wantErr: "tls_config.ca_ref: secret references"},
		{name: "tls versions", mutate: func(c *Config) {
			tlsc(c).MinVersion, tlsc(c).MaxVersion = tls.VersionTLS13, tls.VersionTLS12
		}, wantErr: "tls_config.min_version: above max_version"},
		{name: "tls min version ok", mutate: func(c *Config) { tlsc(c).MinVersion = tls.VersionTLS12 }},

		{name: "proxy scheme", mutate: func(c *Config) { c.HTTPClientConfig.ProxyURL = proxy("ftp://proxy:1") }, wantErr: "proxy_url: scheme"},
		{name: "proxy ok", mutate: func(c *Config) { c.HTTPClientConfig.ProxyURL = proxy("socks5://proxy:1080") }},
		{name: "proxy from env and url", mutate: func(c *Config) {
			c.HTTPClientConfig.ProxyURL = proxy("http://proxy:3128")
			c.HTTPClientConfig.ProxyFromEnvironment = true
		}, wantErr: "proxy_from_environment:"},
		{name: "no_proxy without proxy_url", mutate: func(c *Config) { c.HTTPClientConfig.NoProxy = "10.0.0.0/8" }, wantErr: "no_proxy:"},
		{name: "proxy_connect_header without proxy", mutate: func(c *Config) {
			c.HTTPClientConfig.ProxyConnectHeader = commoncfg.ProxyHeader{"X-A": {"b"}}
		}, wantErr: "proxy_connect_header:"},
		{name: "proxy from env ok", mutate: func(c *Config) {
			c.HTTPClientConfig.ProxyFromEnvironment = true
			c.HTTPClientConfig.ProxyConnectHeader = commoncfg.ProxyHeader{"X-A": {"b"}}
		}},

		{name: "sigv4 ok", mutate: func(c *Config) {
			c.SigV4Config = &sigv4.SigV4Config{Region: "eu-west-1", AccessKey: "AK", SecretKey: "SK"}
		}},
		{name: "sigv4 key without secret", mutate: func(c *Config) { c.SigV4Config = &sigv4.SigV4Config{Region: "eu-west-1", AccessKey: "AK"} },
			wantErr: "sigv4: must provide a AWS SigV4 Access key and Secret Key"},
		{name: "sigv4 external_id without role", mutate: func(c *Config) { c.SigV4Config = &sigv4.SigV4Config{ExternalID: "x"} },
			wantErr: "sigv4: external_id can only be used with role_arn"},
		{name: "azuread ok", mutate: func(c *Config) {
			c.AzureADConfig = &azuread.AzureADConfig{ManagedIdentity: &azuread.ManagedIdentityConfig{ClientID: uuid}}
		}},
		{name: "azuread no method", mutate: func(c *Config) { c.AzureADConfig = &azuread.AzureADConfig{Cloud: "AzurePublic"} },
			wantErr: "azuread: must provide an Azure Managed Identity"},
		{name: "azuread bad cloud", mutate: func(c *Config) {
			c.AzureADConfig = &azuread.AzureADConfig{Cloud: "Mars", ManagedIdentity: &azuread.ManagedIdentityConfig{}}
		}, wantErr: "azuread: must provide a cloud"},
		{name: "azuread oauth client_id", mutate: func(c *Config) {
			c.AzureADConfig = &azuread.AzureADConfig{OAuth: &azuread.OAuthConfig{ClientID: "nope", ClientSecret: "s", TenantID: "t"}}
		}, wantErr: "azuread: the provided Azure OAuth client_id is invalid"},
		{name: "google_iam ok", mutate: func(c *Config) { c.GoogleIAMConfig = &googleiam.Config{CredentialsFile: secretFile} }},
		{name: "google_iam file missing", mutate: func(c *Config) { c.GoogleIAMConfig = &googleiam.Config{CredentialsFile: missing} },
			wantErr: "google_iam.credentials_file: open"},

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
			c.QueueConfig.MinBackoff, c.QueueConfig.MaxBackoff = model.Duration(time.Second), model.Duration(time.Millisecond)
		}, wantErr: "queue_config.max_backoff: below min_backoff"},
		{name: "metadata interval", mutate: func(c *Config) { c.MetadataConfig.SendInterval = -1 }, wantErr: "metadata_config.send_interval:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{URL: "https://receiver.example:9090/api/v1/write"}
			c.ApplyDefaults()
			tt.mutate(&c)
			err := c.Validate()
			if !requireErr(t, err, tt.wantErr) {
				return
			}
			require.True(t, strings.HasPrefix(err.Error(), strings.SplitN(tt.wantErr, ":", 2)[0]+":"),
				"the error starts with the key path: %v", err)
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
		{name: "relative dir", mutate: func(c *WALConfig) { c.Dir = "relative/wal" }, wantErr: `dir: "relative/wal" is not an absolute path`},
		{name: "every problem", mutate: func(c *WALConfig) { c.Dir = "wal"; c.Fsync = "never" }, wantErr: `dir: "wal" is not an absolute path` + "\nfsync:"},
		{name: "max size", mutate: func(c *WALConfig) { c.MaxSize = 1000 }, wantErr: "max_size:"},
		{name: "fsync", mutate: func(c *WALConfig) { c.Fsync = "always" }, wantErr: "fsync:"},
		{name: "fsync segment", mutate: func(c *WALConfig) { c.Fsync = "segment" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultWALConfig()
			tt.mutate(&c)
			requireErr(t, c.Validate(), tt.wantErr)
		})
	}
}

// TestSecretsNeverShown: every secret a remote_write block can hold stays
// out of everything a log line or a config dump can show.
func TestSecretsNeverShown(t *testing.T) {
	secrets := []string{"hunter2-password", "tok3n-credential", "oauth-client-s3cret", "aws-s3cret-key", "azure-client-s3cret", "header-s3cret"}
	mk := func(c Config) Config { c.URL = "http://h/api/v1/write"; c.ApplyDefaults(); return c }
	configs := map[string]Config{
		"basic_auth": mk(Config{HTTPClientConfig: commoncfg.HTTPClientConfig{
			BasicAuth: &commoncfg.BasicAuth{Username: "user", Password: commoncfg.Secret(secrets[0])},
			HTTPHeaders: &commoncfg.Headers{Headers: map[string]commoncfg.Header{
				"X-Key": {Secrets: []commoncfg.Secret{commoncfg.Secret(secrets[5])}}}},
		}}),
		"authorization": mk(Config{HTTPClientConfig: commoncfg.HTTPClientConfig{
			Authorization: &commoncfg.Authorization{Credentials: commoncfg.Secret(secrets[1])}}}),
		"oauth2": mk(Config{HTTPClientConfig: commoncfg.HTTPClientConfig{
			OAuth2: &commoncfg.OAuth2{ClientID: "id", ClientSecret: commoncfg.Secret(secrets[2]), TokenURL: "http://t/token"}}}),
		"sigv4": mk(Config{SigV4Config: &sigv4.SigV4Config{Region: "r", AccessKey: "AK", SecretKey: commoncfg.Secret(secrets[3])}}),
		"azuread": mk(Config{AzureADConfig: &azuread.AzureADConfig{OAuth: &azuread.OAuthConfig{
			ClientID: "00000000-0000-0000-0000-000000000001", ClientSecret: commoncfg.Secret(secrets[4]), TenantID: "t"}}}),
	}
	for block, c := range configs {
		require.NoError(t, c.Validate(), block)
		y, err := yaml.Marshal(c)
		require.NoError(t, err)
		j, err := json.Marshal(c)
		require.NoError(t, err)
		var logged strings.Builder
		slog.New(slog.NewTextHandler(&logged, nil)).Info("endpoint", "config", c, "ptr", &c)
		for name, out := range map[string]string{
			"fmt %v":  fmt.Sprintf("%v", c),
			"fmt %+v": fmt.Sprintf("%+v", c),
			"fmt %#v": fmt.Sprintf("%#v", c),
			"fmt %s":  fmt.Sprintf("%s", &c),
			"String":  c.String(),
			"yaml":    string(y),
			"json":    string(j),
			"slog":    logged.String(),
		} {
			t.Run(block+"/"+name, func(t *testing.T) {
				for _, s := range secrets {
					require.NotContains(t, out, s)
				}
			})
		}
		require.Contains(t, c.String(), "<secret>", block)
	}
	require.Contains(t, configs["basic_auth"].String(), "username: user", "non-secrets stay visible")
}

// decodeStrict decodes one remote_write entry as package configs does.
func decodeStrict(doc string) (Config, error) {
	var c Config
	if err := rwtest.DecodeStrict(doc, &c); err != nil {
		return c, err
	}
	c.ApplyDefaults()
	return c, c.Validate()
}

// TestDecodePrometheusBlock decodes a remote_write entry as a user would
// paste it from prometheus.yml, strictly, as package configs does.
func TestDecodePrometheusBlock(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tok, []byte("t"), 0o600))
	c, err := decodeStrict(`
url: https://mimir.example/api/v1/push
remote_timeout: 1m30s
headers:
  X-Scope-OrgID: team-a
authorization:
  credentials_file: ` + tok + `
tls_config:
  insecure_skip_verify: false
  min_version: TLS12
proxy_from_environment: true
follow_redirects: true
enable_http2: false
http_headers:
  X-Team:
    values: [kata]
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
  max_backoff: 1d
  retry_on_http_429: false
metadata_config:
  send: false
  send_interval: 1w
`)
	require.NoError(t, err)
	require.Equal(t, model.Duration(90*time.Second), c.RemoteTimeout)
	require.Equal(t, 500, c.QueueConfig.MaxSamplesPerSend)
	require.Equal(t, model.Duration(50*time.Millisecond), c.QueueConfig.MinBackoff)
	require.Equal(t, model.Duration(24*time.Hour), c.QueueConfig.MaxBackoff, "Prometheus's 1d")
	require.Equal(t, model.Duration(7*24*time.Hour), c.MetadataConfig.SendInterval)
	require.False(t, *c.QueueConfig.RetryOnHTTP429)
	require.False(t, *c.MetadataConfig.Send)
	require.Equal(t, "Bearer", c.HTTPClientConfig.Authorization.Type)
	require.Equal(t, commoncfg.TLSVersion(tls.VersionTLS12), c.HTTPClientConfig.TLSConfig.MinVersion)
	require.True(t, c.HTTPClientConfig.ProxyFromEnvironment)
	require.True(t, c.HTTPClientConfig.FollowRedirects)
	require.Equal(t, []string{"kata"}, c.HTTPClientConfig.HTTPHeaders.Headers["X-Team"].Values)
	require.Len(t, c.WriteRelabelConfigs, 2)
	require.Equal(t, relabel.Drop, c.WriteRelabelConfigs[0].Action)
	require.Equal(t, relabel.Replace, c.WriteRelabelConfigs[1].Action, "relabel defaults applied")
}

// TestDecodeUnknownKeys: KnownFields(true) still names an unknown key and
// its line inside every embedded library type, inline or nested (yaml.v3
// keeps it through their func-style UnmarshalYAML, unlike Node.Decode).
func TestDecodeUnknownKeys(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"queue_config", "url: http://x/w\nqueue_config:\n  max_shard: 3\n", "line 3: field max_shard not found"},
		{"inline http client", "url: http://x/w\nfollow_redirect: true\n", "line 2: field follow_redirect not found"},
		{"basic_auth", "url: http://x/w\nbasic_auth:\n  username: u\n  passwrd: p\n", "line 4: field passwrd not found"},
		{"oauth2", "url: http://x/w\noauth2:\n  client_id: a\n  tokn_url: http://t\n", "line 4: field tokn_url not found"},
		{"oauth2 tls_config", "url: http://x/w\noauth2:\n  client_id: a\n  token_url: http://t\n  tls_config:\n    ca_fil: x\n", "line 6: field ca_fil not found"},
		{"tls_config", "url: http://x/w\ntls_config:\n  insecure_skip_verfy: true\n", "line 3: field insecure_skip_verfy not found"},
		{"sigv4", "url: http://x/w\nsigv4:\n  regin: eu-west-1\n", "line 3: field regin not found"},
		{"azuread", "url: http://x/w\nazuread:\n  managed_identity:\n    clientid: x\n", "line 4: field clientid not found"},
		{"google_iam", "url: http://x/w\ngoogle_iam:\n  credentials: x\n", "line 3: field credentials not found"},
		{"prometheus-only key", "url: http://x/w\nsend_exemplars: true\n", "line 2: field send_exemplars not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeStrict(tt.doc)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// requireErr checks err against want: nil when want is empty, else an
// error containing want. It reports whether an error was wanted.
func requireErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		require.NoError(t, err)
		return false
	}
	require.ErrorContains(t, err, want)
	return true
}
