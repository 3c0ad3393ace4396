package shim

import (
	"errors"
	"time"
)

// Config bounds every request to a shim's monitor socket. A zero Config is
// invalid: start from DefaultConfig.
type Config struct {
	// Timeout bounds one request (connect, headers and body), so one hung
	// shim cannot stall a scrape round. Debug profiles and traces get their
	// ?seconds= on top.
	Timeout time.Duration `yaml:"timeout"`
	// MaxResponseBytes caps the /metrics and /agent-url bodies: a shim gone
	// mad cannot make kata-monitor buffer more than this per request.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
}

// DefaultConfig returns the defaults: 5s per request and 32 MiB per body
// (a busy shim serves well under 1 MiB).
func DefaultConfig() Config {
	return Config{
		Timeout:          5 * time.Second,
		MaxResponseBytes: 32 << 20,
	}
}

// Validate reports the first invalid field, named as in YAML.
func (c Config) Validate() error {
	if c.Timeout <= 0 {
		return errors.New("timeout: must be > 0")
	}
	if c.MaxResponseBytes <= 0 {
		return errors.New("max_response_bytes: must be > 0")
	}
	return nil
}
