package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Config selects where sandboxes are discovered and how often the watched
// state is reconciled against a full listing.
type Config struct {
	// Roots are the sandbox roots, in priority order: when the same id exists
	// under two roots, the earlier root wins. Upstream uses /run/vc/sbs (Go
	// runtime) and /run/kata (runtime-rs).
	Roots []string `yaml:"roots"`
	// ResyncInterval is how often every root is re-listed, so that missed or
	// overflowed fsnotify events converge.
	ResyncInterval time.Duration `yaml:"resync_interval"`
}

// DefaultConfig returns upstream's roots and a 30s resync.
func DefaultConfig() Config {
	return Config{
		Roots:          []string{"/run/vc/sbs", "/run/kata"},
		ResyncInterval: 30 * time.Second,
	}
}

// Validate reports the first problem found, naming the offending field.
func (c Config) Validate() error {
	if len(c.Roots) == 0 {
		return errors.New("roots: must list at least one directory")
	}
	seen := make(map[string]bool, len(c.Roots))
	for i, r := range c.Roots {
		if !filepath.IsAbs(r) {
			return fmt.Errorf("roots[%d]: %q is not an absolute path", i, r)
		}
		clean := filepath.Clean(r)
		if seen[clean] {
			return fmt.Errorf("roots[%d]: %q is listed twice", i, r)
		}
		seen[clean] = true
	}
	if c.ResyncInterval <= 0 {
		return errors.New("resync_interval: must be > 0")
	}
	return nil
}
