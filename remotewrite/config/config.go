// Package config is the remote write part of kata-monitor's config file:
// a remote_write endpoint (Config: Prometheus's remote_write entry, with
// prometheus/common's HTTP client block and the sigv4, azuread and
// google_iam blocks Prometheus uses, plus tenant routing), the shared
// wal block (WALConfig) and byte sizes (Bytes). Each type owns its
// defaults and Validate, whose errors name the key as the file spells it;
// package configs decodes the file strictly (unknown keys are errors
// with their line) and prefixes the list position. NewRoundTripper builds
// an endpoint's authenticated transport.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/storage/remote/azuread"
	"github.com/prometheus/prometheus/storage/remote/googleiam"
	"github.com/prometheus/sigv4"
	"gopkg.in/yaml.v3"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
)

// Config is one remote_write endpoint. Its YAML is Prometheus's remote_write
// entry (config.RemoteWriteConfig): the HTTP client block is
// prometheus/common's HTTPClientConfig, inline, and sigv4, azuread and
// google_iam are the types Prometheus uses, so a block pasted from
// prometheus.yml decodes unchanged. Keys Prometheus has and kata-monitor
// does not (send_exemplars, send_native_histograms, ...) are unknown keys,
// refused by the strict decoder in package configs.
type Config struct {
	// URL is the receiver's write endpoint, http or https.
	URL string `yaml:"url"`
	// Name names the endpoint in metrics, logs and the WAL directory
	// (wal.dir/<name>). Default: the first 6 hex digits of sha256(url), so
	// the directory stays stable while the URL does.
	Name string `yaml:"name"`
	// RemoteTimeout bounds one HTTP request, including reading the answer.
	RemoteTimeout model.Duration `yaml:"remote_timeout"`
	// Headers are added to every request (e.g. X-Scope-OrgID). Protocol
	// headers and Authorization are refused; User-Agent may be overridden.
	Headers map[string]string `yaml:"headers"`
	// ProtobufMessage is the remote write message: "prometheus.WriteRequest"
	// (remote write 1.0, the default) or "io.prometheus.write.v2.Request"
	// (2.0: a symbols table per request, type, help and unit with every
	// series, exact accounting from the receiver's Written headers), as in
	// Prometheus's remote_write. An endpoint set to 2.0 whose receiver
	// answers 415 (or 2xx without Written headers, or 400 before any 2.0
	// request was written) falls back to 1.0 until the next start.
	ProtobufMessage string `yaml:"protobuf_message"`
	// Compression is the request body's Content-Encoding: "snappy" (the
	// default, the only one the remote write specifications allow) or
	// "zstd" (klauspost/compress, level SpeedDefault), for receivers that
	// take it (VictoriaMetrics on /api/v1/write): 2.0 with zstd is about
	// 0.4 times the bytes of 2.0 with snappy.
	Compression string `yaml:"compression"`
	// WriteRelabelConfigs run on every series before it is queued; a
	// series they drop (or leave without labels) is counted as dropped
	// with reason "relabel".
	WriteRelabelConfigs []*relabel.Config `yaml:"write_relabel_configs"`
	// HTTPClientConfig is basic_auth, authorization, oauth2, tls_config,
	// the proxy keys, follow_redirects, enable_http2 and http_headers. Its
	// round trippers re-read *_file secrets on every request (rotation
	// without restart) and reload changed TLS files. Defaults differ from
	// Prometheus's in follow_redirects (false: a redirect would replay the
	// body, and the credentials the round trippers add, to another host);
	// enable_http2 is false as in Prometheus's remote_write.
	HTTPClientConfig commoncfg.HTTPClientConfig `yaml:",inline"`
	QueueConfig      QueueConfig                `yaml:"queue_config"`
	MetadataConfig   MetadataConfig             `yaml:"metadata_config"`
	// SigV4Config signs requests with AWS Signature Version 4 (Amazon
	// Managed Service for Prometheus), through github.com/prometheus/sigv4.
	SigV4Config *sigv4.SigV4Config `yaml:"sigv4"`
	// AzureADConfig authenticates to Azure Monitor through Prometheus's
	// storage/remote/azuread.
	AzureADConfig *azuread.AzureADConfig `yaml:"azuread"`
	// GoogleIAMConfig authenticates to Google Cloud Managed Service for
	// Prometheus through Prometheus's storage/remote/googleiam.
	GoogleIAMConfig *googleiam.Config `yaml:"google_iam"`
	// Tenant, when set, routes each series to a tenant taken from one of
	// its labels (e.g. cri_namespace), sent in a tenant header, with a WAL
	// and a sender per tenant (see TenantConfig, remotewrite/tenant). Not in
	// Prometheus's remote_write.
	Tenant *TenantConfig `yaml:"tenant"`
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
	BatchSendDeadline model.Duration `yaml:"batch_send_deadline"`
	// MinBackoff is the first retry delay; it doubles up to MaxBackoff.
	MinBackoff model.Duration `yaml:"min_backoff"`
	MaxBackoff model.Duration `yaml:"max_backoff"`
	// RetryOnHTTP429 retries "429 Too Many Requests" (default true); when
	// false a 429 drops the request, counted as
	// samples_dropped_total{reason="http_429"} (docs/remote-write.md).
	RetryOnHTTP429 *bool `yaml:"retry_on_http_429"`
	// MaxBytesPerSecond caps the request bodies sent to the endpoint, in
	// bytes per second over all shards (0, the default: no cap), so that
	// catching up a backlog after an outage does not fill a small uplink.
	// A token bucket (golang.org/x/time/rate) of one second's bytes; a
	// request larger than that waits for its bytes in one-second pieces.
	// HTTP headers (a few hundred bytes per request) are not counted.
	// Not a Prometheus key.
	MaxBytesPerSecond Bytes `yaml:"max_bytes_per_second"`
}

// MetadataConfig controls the best-effort metric metadata (HELP/TYPE) sent
// beside the samples, outside the WAL.
type MetadataConfig struct {
	// Send enables metadata (default true).
	Send *bool `yaml:"send"`
	// SendInterval is how often the latest metadata set is sent.
	SendInterval model.Duration `yaml:"send_interval"`
}

// DefaultConfig returns the defaults of one endpoint (URL and Name empty).
// They match Prometheus's remote_write defaults where both have the field,
// except follow_redirects (see Config.HTTPClientConfig).
func DefaultConfig() Config {
	yes := true
	return Config{
		RemoteTimeout:   model.Duration(30 * time.Second),
		ProtobufMessage: codec.MessageV1,
		Compression:     codec.CompressionSnappy,
		QueueConfig: QueueConfig{
			Capacity:          10000,
			MaxShards:         8,
			MinShards:         1,
			MaxSamplesPerSend: 2000,
			BatchSendDeadline: model.Duration(5 * time.Second),
			MinBackoff:        model.Duration(30 * time.Millisecond),
			MaxBackoff:        model.Duration(5 * time.Second),
			RetryOnHTTP429:    &yes,
		},
		MetadataConfig: MetadataConfig{Send: &yes, SendInterval: model.Duration(time.Minute)},
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
	setIfZero(&c.ProtobufMessage, d.ProtobufMessage)
	setIfZero(&c.Compression, d.Compression)
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
	if a := c.HTTPClientConfig.Authorization; a != nil {
		a.Type = strings.TrimSpace(a.Type)
		if a.Type == "" {
			a.Type = "Bearer" // as common's HTTPClientConfig.Validate does
		}
	}
	if az := c.AzureADConfig; az != nil && az.Cloud == "" {
		az.Cloud = azuread.AzurePublic
	}
	if c.Tenant != nil {
		c.Tenant.applyDefaults()
	}
}

func setIfZero[T comparable](dst *T, def T) {
	var zero T
	if *dst == zero {
		*dst = def
	}
}

// String renders the endpoint as YAML with every secret shown as <secret>
// (prometheus/common's Secret marshals so), so a Config can be logged.
// fmt's %v, %+v, %s and %#v all use it.
func (c Config) String() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("remote_write %q (%v)", c.Name, err)
	}
	return string(b)
}

// GoString makes %#v use String: the derived form would print secrets.
func (c Config) GoString() string { return c.String() }

// LogValue makes slog print String, never the fields.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

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
// as the file spells it (e.g. "queue_config.max_backoff: below
// min_backoff", "sigv4: ..."); the caller prefixes the list position. Files
// named by *_file keys must be readable now, so a typo fails at start
// rather than at the first send. The checks are Prometheus's
// (RemoteWriteConfig, HTTPClientConfig, SigV4Config and AzureADConfig
// validation) plus ours.
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
	switch c.ProtobufMessage {
	case codec.MessageV1, codec.MessageV2:
	default:
		return fmt.Errorf("protobuf_message: %q must be %s or %s", c.ProtobufMessage, codec.MessageV1, codec.MessageV2)
	}
	switch c.Compression {
	case codec.CompressionSnappy, codec.CompressionZstd:
	default:
		return fmt.Errorf("compression: %q must be %s or %s", c.Compression, codec.CompressionSnappy, codec.CompressionZstd)
	}
	for k := range c.Headers {
		if ck := http.CanonicalHeaderKey(k); forbiddenHeader(ck) {
			return fmt.Errorf("headers: %q may not be set here", ck)
		}
		if ck := http.CanonicalHeaderKey(k); ck == "User-Agent" && c.ProtobufMessage == codec.MessageV2 {
			// Remote write 2.0: senders "MUST NOT allow users to
			// configure [custom headers] in such a way as to send
			// reserved headers", User-Agent included.
			return fmt.Errorf("headers: %q may not be set with protobuf_message %s", ck, codec.MessageV2)
		}
		if strings.TrimSpace(k) == "" || strings.ContainsAny(k, " :\r\n") {
			return fmt.Errorf("headers: invalid header name %q", k)
		}
	}
	if err := c.validateHTTPClient(); err != nil {
		return err
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
	if c.Tenant != nil {
		if err := c.Tenant.validate(c.Headers); err != nil {
			return fmt.Errorf("tenant.%w", err)
		}
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
	case q.MaxBytesPerSecond < 0:
		return errors.New("max_bytes_per_second: must be >= 0")
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
	for _, w := range notRemoteWritePaths {
		if strings.HasSuffix(u.Path, w.suffix) || strings.Contains(u.Path, w.suffix+"/") {
			return fmt.Errorf("path %q is %s, not remote write: it answers 2xx to a remote-write request and stores nothing; use the receiver's remote-write path (VictoriaMetrics and Prometheus: /api/v1/write)", u.Path, w.what)
		}
	}
	return nil
}

// notRemoteWritePaths are ingestion paths of other protocols on which
// VictoriaMetrics (checked against 1.79) answers 204 to a remote-write
// request without storing a sample: a url ending there loses everything
// while every counter says sent.
var notRemoteWritePaths = []struct{ suffix, what string }{
	{"/api/v1/import", "VictoriaMetrics's import API"},
	{"/influx/write", "an InfluxDB line-protocol write"},
	{"/influx/api/v2/write", "an InfluxDB line-protocol write"},
	{"/api/v2/write", "an InfluxDB line-protocol write"},
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
