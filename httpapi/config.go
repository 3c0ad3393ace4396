package httpapi

import (
	"errors"
	"time"
)

// Config bounds the listener. The zero value is not usable: start from
// DefaultConfig and decode the YAML over it.
type Config struct {
	// EnableDebug serves the /debug/* proxy to the shims, as upstream does.
	// When false every /debug/* path answers 404, so a locked-down node can
	// keep pprof of the shims unreachable.
	EnableDebug bool `yaml:"enable_debug"`
	// ReadTimeout bounds reading one request (slowloris protection). Headers
	// have their own, shorter bound of 10s or ReadTimeout if smaller.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout, when > 0, is the write deadline of ordinary responses.
	// 0 (the default) gives them 60s. /metrics (60s) and the streaming
	// profile/trace proxies (seconds+30s) always set their own deadline,
	// because a single server-wide value would cut profiles short.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxHeaderBytes caps the request line plus headers.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxQueryBytes caps the raw query string; a longer one answers 414
	// before anything is parsed.
	MaxQueryBytes int `yaml:"max_query_bytes"`
}

// DefaultConfig returns the upstream-compatible defaults: debug proxy on,
// 30s read timeout, 64 KiB of headers, 4 KiB of query.
func DefaultConfig() Config {
	return Config{
		EnableDebug:    true,
		ReadTimeout:    30 * time.Second,
		WriteTimeout:   0,
		MaxHeaderBytes: 64 << 10,
		MaxQueryBytes:  4 << 10,
	}
}

// Validate reports the first invalid field, named by its YAML key.
func (c Config) Validate() error {
	switch {
	case c.ReadTimeout <= 0:
		return errors.New("read_timeout: must be > 0")
	case c.WriteTimeout < 0:
		return errors.New("write_timeout: must be >= 0")
	case c.MaxHeaderBytes < 1024:
		return errors.New("max_header_bytes: must be >= 1024")
	case c.MaxQueryBytes <= 0:
		return errors.New("max_query_bytes: must be > 0")
	case c.MaxQueryBytes > c.MaxHeaderBytes:
		return errors.New("max_query_bytes: must not exceed max_header_bytes")
	}
	return nil
}

// readHeaderTimeout is the header bound: 10s, or ReadTimeout when smaller.
func (c Config) readHeaderTimeout() time.Duration {
	return min(10*time.Second, c.ReadTimeout)
}
