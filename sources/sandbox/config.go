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
		return &RootsError{Index: -1, Reason: "must list at least one directory"}
	}
	seen := make(map[string]bool, len(c.Roots))
	for i, r := range c.Roots {
		if !filepath.IsAbs(r) {
			return &RootsError{Index: i, Reason: fmt.Sprintf("%q is not an absolute path", r)}
		}
		clean := filepath.Clean(r)
		if seen[clean] {
			return &RootsError{Index: i, Reason: fmt.Sprintf("%q is listed twice", r)}
		}
		seen[clean] = true
	}
	if c.ResyncInterval <= 0 {
		return errors.New("resync_interval: must be > 0")
	}
	return nil
}

// RootsError is a Validate error about Roots rather than another field, so
// a caller that takes the roots from elsewhere (a top-level key, a
// repeatable flag) can name them its own way.
type RootsError struct {
	Index  int    // the offending root; -1 for the list as a whole
	Reason string // e.g. `"run/vc" is not an absolute path`
}

// Error renders "roots[1]: ..." (or "roots: ..." for the list).
func (e *RootsError) Error() string {
	if e.Index < 0 {
		return "roots: " + e.Reason
	}
	return fmt.Sprintf("roots[%d]: %s", e.Index, e.Reason)
}
