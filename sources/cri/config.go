package cri

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Config says where the CRI runtime listens and how fresh the pod metadata
// is kept.
type Config struct {
	// Endpoint is the runtime's unix socket, as "/path", "unix:///path" or
	// "unix:/path" (containerd and CRI-O both serve the same RuntimeService).
	Endpoint string `yaml:"endpoint"`
	// Timeout bounds each CRI call.
	Timeout time.Duration `yaml:"timeout"`
	// RefreshInterval is the period of the full refresh that also drops
	// pods that are gone.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// MinRefreshInterval rate-limits refreshes asked for by lookups of
	// unknown ids, so that a sandbox the CRI never learns about cannot make
	// kata-monitor hammer the runtime. Zero disables the limit.
	MinRefreshInterval time.Duration `yaml:"min_refresh_interval"`
}

// DefaultConfig returns containerd's socket, a 5s timeout, a 60s refresh
// and at most one lookup-triggered refresh every 5s (upstream asks the CRI
// about 5s after a new sandbox appears).
func DefaultConfig() Config {
	return Config{
		Endpoint:           "/run/containerd/containerd.sock",
		Timeout:            5 * time.Second,
		RefreshInterval:    60 * time.Second,
		MinRefreshInterval: 5 * time.Second,
	}
}

// Validate reports the first problem found, naming the offending field.
func (c Config) Validate() error {
	if _, err := socketPath(c.Endpoint); err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	if c.Timeout <= 0 {
		return errors.New("timeout: must be > 0")
	}
	if c.RefreshInterval <= 0 {
		return errors.New("refresh_interval: must be > 0")
	}
	if c.MinRefreshInterval < 0 {
		return errors.New("min_refresh_interval: must be >= 0")
	}
	return nil
}

// unixScheme is the only URL scheme a CRI endpoint may carry.
const unixScheme = "unix://"

// socketPath turns an endpoint into the socket path: "/path",
// "unix:///path" (kubelet's and crictl's form) or "unix:/path" (the form of
// gRPC's naming doc, https://github.com/grpc/grpc/blob/master/doc/naming.md,
// which kubelet also accepts). Other schemes (tcp://, npipe://) are
// refused: CRI runtimes on a Kata host listen on unix sockets.
func socketPath(endpoint string) (string, error) {
	if endpoint == "" {
		return "", errors.New("must not be empty")
	}
	path := endpoint
	scheme, hasScheme := uriScheme(endpoint)
	switch {
	case hasScheme && !strings.EqualFold(scheme, "unix"):
		return "", fmt.Errorf("unsupported scheme %q, want unix://", scheme)
	case hasScheme:
		// Schemes are case-insensitive (RFC 3986 section 3.1), as in
		// kubelet's url.Parse: "UNIX:///run/x.sock" is the unix scheme.
		rest := endpoint[len(scheme)+1:]
		if r, ok := strings.CutPrefix(rest, "//"); ok {
			rest = r
		} else if !strings.HasPrefix(rest, "/") {
			return "", fmt.Errorf("%q is not an absolute socket path", endpoint)
		}
		path = rest
	}
	if strings.ContainsRune(path, 0) {
		return "", errors.New("contains a NUL byte")
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("%q is not an absolute socket path", endpoint)
	}
	return filepath.Clean(path), nil
}

// uriScheme returns the scheme an endpoint starts with, by RFC 3986
// section 3.1 (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) then ":"), so
// that "tcp://x" and "npipe:////./pipe/x" are named as schemes while an
// absolute path with a colon in it ("/run/a:b") is still a path.
func uriScheme(endpoint string) (string, bool) {
	for i := 0; i < len(endpoint); i++ {
		c := endpoint[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return endpoint[:i], true
		default:
			return "", false
		}
	}
	return "", false
}
