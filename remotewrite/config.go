package remotewrite

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
)

// Config is one remote_write endpoint. Its YAML mirrors Prometheus's
// remote_write entry so users can paste the block they already have; keys
// Prometheus has and we do not (oauth2, sigv4, ...) are unknown keys and
// therefore refused by the strict decoder in package configs.
type Config struct {
	// URL is the receiver's write endpoint, http or https.
	URL string `yaml:"url"`
	// Name names the endpoint in metrics, logs and the WAL directory
	// (wal.dir/<name>). Default: the first 6 hex digits of sha256(url), so
	// the directory stays stable while the URL does.
	Name string `yaml:"name"`
	// RemoteTimeout bounds one HTTP request, including reading the answer.
	RemoteTimeout time.Duration `yaml:"remote_timeout"`
	// Headers are added to every request (e.g. X-Scope-OrgID). Protocol
	// headers and Authorization are refused; User-Agent may be overridden.
	Headers map[string]string `yaml:"headers"`
	// BasicAuth and Authorization are mutually exclusive.
	BasicAuth     *BasicAuth     `yaml:"basic_auth"`
	Authorization *Authorization `yaml:"authorization"`
	TLSConfig     TLSConfig      `yaml:"tls_config"`
	// ProxyURL is an http, https or socks5 proxy for this endpoint.
	ProxyURL string `yaml:"proxy_url"`
	// WriteRelabelConfigs run on every series before it is queued; a
	// series they drop (or leave without labels) is counted as dropped
	// with reason "relabel".
	WriteRelabelConfigs []*relabel.Config `yaml:"write_relabel_configs"`
	QueueConfig         QueueConfig       `yaml:"queue_config"`
	MetadataConfig      MetadataConfig    `yaml:"metadata_config"`
}

// QueueConfig tunes batching, concurrency and retry. It keeps Prometheus's
// field names; see each field for how it maps onto our WAL-first design.
type QueueConfig struct {
	// Capacity is samples kept in memory per shard. Here it sizes the WAL's
	// in-memory tail (Capacity * MaxShards * ~10 bytes) so a caught-up
	// sender never reads blocks back from disk.
	Capacity int `yaml:"capacity"`
	// MaxShards is the maximum number of concurrent requests. The blocks of
	// one round hold disjoint series, so they may go out concurrently
	// without reordering any series.
	MaxShards int `yaml:"max_shards"`
	// MinShards is accepted for compatibility with Prometheus configs and
	// ignored: the concurrency is always up to MaxShards.
	MinShards int `yaml:"min_shards"`
	// MaxSamplesPerSend caps the samples of one block, i.e. one request. A
	// series is never split, so a single series larger than this is sent
	// alone in one larger block.
	MaxSamplesPerSend int `yaml:"max_samples_per_send"`
	// BatchSendDeadline is accepted for compatibility and has no effect:
	// blocks are cut at the end of every scrape round, so a round never
	// waits for a batch to fill.
	BatchSendDeadline time.Duration `yaml:"batch_send_deadline"`
	// MinBackoff is the first retry delay; it doubles up to MaxBackoff.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// RetryOnHTTP429 retries "429 Too Many Requests" (default true); when
	// false a 429 drops the block like any other 4xx.
	RetryOnHTTP429 *bool `yaml:"retry_on_http_429"`
}

// MetadataConfig controls the best-effort metric metadata (HELP/TYPE) sent
// beside the samples, outside the WAL.
type MetadataConfig struct {
	// Send enables metadata (default true).
	Send *bool `yaml:"send"`
	// SendInterval is how often the latest metadata set is sent.
	SendInterval time.Duration `yaml:"send_interval"`
}

// BasicAuth sends HTTP basic authentication. The *_file variants are
// re-read on every request, so rotated credentials apply without a restart.
type BasicAuth struct {
	Username     string `yaml:"username"`
	UsernameFile string `yaml:"username_file"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// Authorization sends "Authorization: <type> <credentials>". The
// credentials file is re-read on every request (token rotation).
type Authorization struct {
	// Type defaults to Bearer.
	Type            string `yaml:"type"`
	Credentials     Secret `yaml:"credentials"`
	CredentialsFile string `yaml:"credentials_file"`
}

// TLSConfig configures the client side of TLS. Files are reloaded when
// their content changes (certificate rotation).
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	// MinVersion is one of TLS10, TLS11, TLS12, TLS13 (empty: Go's default).
	MinVersion string `yaml:"min_version"`
}

// Secret is a string that never shows itself: String, GoString, LogValue
// and the YAML/JSON encodings all yield "<secret>", so a config can be
// logged or dumped safely.
type Secret string

const secretMask = "<secret>"

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string { return mask(s) }

// GoString implements fmt.GoStringer (%#v) without revealing the value.
func (s Secret) GoString() string { return mask(s) }

// MarshalYAML implements yaml.Marshaler without revealing the value.
func (s Secret) MarshalYAML() (any, error) { return mask(s), nil }

// MarshalJSON implements json.Marshaler without revealing the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + mask(s) + `"`), nil }

func mask(s Secret) string {
	if s == "" {
		return ""
	}
	return secretMask
}

// DefaultConfig returns the defaults of one endpoint (URL and Name empty).
// They match Prometheus's remote_write defaults where both have the field.
func DefaultConfig() Config {
	yes := true
	return Config{
		RemoteTimeout: 30 * time.Second,
		QueueConfig: QueueConfig{
			Capacity:          10000,
			MaxShards:         8,
			MinShards:         1,
			MaxSamplesPerSend: 2000,
			BatchSendDeadline: 5 * time.Second,
			MinBackoff:        30 * time.Millisecond,
			MaxBackoff:        5 * time.Second,
			RetryOnHTTP429:    &yes,
		},
		MetadataConfig: MetadataConfig{Send: &yes, SendInterval: time.Minute},
	}
}

// ApplyDefaults fills every zero field from DefaultConfig and derives Name
// from URL when empty. configs calls it on each list item after decoding,
// because list items are not decoded over a default value.
func (c *Config) ApplyDefaults() {
	d := DefaultConfig()
	if c.Name == "" && c.URL != "" {
		sum := sha256.Sum256([]byte(c.URL))
		c.Name = hex.EncodeToString(sum[:])[:6]
	}
	setIfZero(&c.RemoteTimeout, d.RemoteTimeout)
	q, dq := &c.QueueConfig, d.QueueConfig
	setIfZero(&q.Capacity, dq.Capacity)
	setIfZero(&q.MaxShards, dq.MaxShards)
	setIfZero(&q.MinShards, dq.MinShards)
	setIfZero(&q.MaxSamplesPerSend, dq.MaxSamplesPerSend)
	setIfZero(&q.BatchSendDeadline, dq.BatchSendDeadline)
	setIfZero(&q.MinBackoff, dq.MinBackoff)
	setIfZero(&q.MaxBackoff, dq.MaxBackoff)
	setIfZero(&q.RetryOnHTTP429, dq.RetryOnHTTP429)
	setIfZero(&c.MetadataConfig.Send, d.MetadataConfig.Send)
	setIfZero(&c.MetadataConfig.SendInterval, d.MetadataConfig.SendInterval)
	if c.Authorization != nil && strings.TrimSpace(c.Authorization.Type) == "" {
		c.Authorization.Type = "Bearer"
	}
}

func setIfZero[T comparable](dst *T, def T) {
	var zero T
	if *dst == zero {
		*dst = def
	}
}

// forbiddenHeader reports headers that the protocol or an auth block sets;
// letting a user override them would corrupt requests or put credentials in
// plain config.
func forbiddenHeader(canonical string) bool {
	switch canonical {
	case "Authorization", "Content-Encoding", "Content-Type", "Content-Length",
		"X-Prometheus-Remote-Write-Version", "Host", "Connection",
		"Transfer-Encoding", "Proxy-Authorization":
		return true
	}
	return false
}

// Validate checks one endpoint after ApplyDefaults. Errors name the field
// (e.g. "queue_config.max_backoff: below min_backoff"); the caller prefixes
// the list position. Files named by *_file fields must be readable now, so
// a typo fails at start rather than at the first send.
func (c Config) Validate() error {
	if err := validateURL(c.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if !validName(c.Name) {
		return fmt.Errorf("name: %q must match ^[a-zA-Z0-9_-]+$", c.Name)
	}
	if c.RemoteTimeout <= 0 {
		return errors.New("remote_timeout: must be > 0")
	}
	for k := range c.Headers {
		if ck := http.CanonicalHeaderKey(k); forbiddenHeader(ck) {
			return fmt.Errorf("headers: %q may not be set here", ck)
		}
		if strings.TrimSpace(k) == "" || strings.ContainsAny(k, " :\r\n") {
			return fmt.Errorf("headers: invalid header name %q", k)
		}
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if err := c.TLSConfig.validate(); err != nil {
		return fmt.Errorf("tls_config.%w", err)
	}
	if c.ProxyURL != "" {
		if err := validateProxy(c.ProxyURL); err != nil {
			return fmt.Errorf("proxy_url: %w", err)
		}
	}
	for i, rc := range c.WriteRelabelConfigs {
		if rc == nil {
			return fmt.Errorf("write_relabel_configs[%d]: empty rule", i)
		}
		if err := rc.Validate(model.UTF8Validation); err != nil {
			return fmt.Errorf("write_relabel_configs[%d]: %w", i, err)
		}
	}
	if err := c.QueueConfig.validate(); err != nil {
		return fmt.Errorf("queue_config.%w", err)
	}
	if c.MetadataConfig.Send != nil && *c.MetadataConfig.Send && c.MetadataConfig.SendInterval <= 0 {
		return errors.New("metadata_config.send_interval: must be > 0")
	}
	return nil
}

func (c Config) validateAuth() error {
	if c.BasicAuth != nil && c.Authorization != nil {
		return errors.New("basic_auth: at most one of basic_auth and authorization")
	}
	if b := c.BasicAuth; b != nil {
		if b.Username != "" && b.UsernameFile != "" {
			return errors.New("basic_auth.username_file: at most one of username and username_file")
		}
		if b.Password != "" && b.PasswordFile != "" {
			return errors.New("basic_auth.password_file: at most one of password and password_file")
		}
		if err := readable(b.UsernameFile); err != nil {
			return fmt.Errorf("basic_auth.username_file: %w", err)
		}
		if err := readable(b.PasswordFile); err != nil {
			return fmt.Errorf("basic_auth.password_file: %w", err)
		}
	}
	if a := c.Authorization; a != nil {
		if strings.EqualFold(strings.TrimSpace(a.Type), "basic") {
			return errors.New(`authorization.type: "basic" is not allowed, use basic_auth`)
		}
		if a.Credentials != "" && a.CredentialsFile != "" {
			return errors.New("authorization.credentials_file: at most one of credentials and credentials_file")
		}
		if err := readable(a.CredentialsFile); err != nil {
			return fmt.Errorf("authorization.credentials_file: %w", err)
		}
	}
	return nil
}

// validate returns errors without the "tls_config." prefix.
func (t TLSConfig) validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("cert_file: cert_file and key_file go together")
	}
	for _, f := range []struct{ name, path string }{
		{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile},
	} {
		if err := readable(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if _, ok := tlsVersion(t.MinVersion); !ok {
		return fmt.Errorf("min_version: unknown TLS version %q (want TLS10, TLS11, TLS12 or TLS13)", t.MinVersion)
	}
	return nil
}

// validate returns errors without the "queue_config." prefix.
func (q QueueConfig) validate() error {
	switch {
	case q.Capacity <= 0:
		return errors.New("capacity: must be > 0")
	case q.MaxShards <= 0:
		return errors.New("max_shards: must be > 0")
	case q.MinShards < 0:
		return errors.New("min_shards: must be >= 0")
	case q.MaxSamplesPerSend <= 0:
		return errors.New("max_samples_per_send: must be > 0")
	case q.BatchSendDeadline < 0:
		return errors.New("batch_send_deadline: must be >= 0")
	case q.MinBackoff <= 0:
		return errors.New("min_backoff: must be > 0")
	case q.MaxBackoff < q.MinBackoff:
		return errors.New("max_backoff: below min_backoff")
	}
	return nil
}

func validateURL(raw string) error {
	if raw == "" {
		return errors.New("must be set")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: must be http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("must have a host")
	}
	return nil
}

func validateProxy(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	switch u.Scheme {
	case "http", "https", "socks5":
	default:
		return fmt.Errorf("scheme %q: must be http, https or socks5", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("must have a host")
	}
	return nil
}

// validName reports whether s is a safe single path element: it becomes a
// directory under wal.dir.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

// readable opens and closes path; an empty path is fine (field unset).
func readable(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}
