package config

import (
	"errors"
	"fmt"
	"path/filepath"
)

// WALConfig is the top-level `wal:` block, shared by all endpoints: each
// endpoint keeps its own queue in Dir/<endpoint name>.
type WALConfig struct {
	// Dir holds one sub-directory per endpoint.
	Dir string `yaml:"dir"`
	// MaxSize is the disk budget of each endpoint's queue. Past it the
	// oldest segments are deleted and their samples counted as dropped.
	MaxSize Bytes `yaml:"max_size"`
	// Fsync is "append" (fsync after every round: a power cut loses at
	// most the round being written) or "segment" (fsync when a segment is
	// completed: a power cut may lose the unsynced tail of the current
	// segment, for less disk I/O).
	Fsync string `yaml:"fsync"`
}

// DefaultWALConfig returns the defaults: /var/lib/kata-monitor/wal, 1GiB
// per endpoint, fsync after every append.
func DefaultWALConfig() WALConfig {
	return WALConfig{Dir: "/var/lib/kata-monitor/wal", MaxSize: gib, Fsync: "append"}
}

// MinWALSize is the least wal.max_size (and the least share of it a
// queue gets): a few segments' worth, below which the queue would drop
// data on every round.
const MinWALSize = mib

// Validate checks the block and reports every problem (errors.Join), each
// naming its field ("wal." is the caller's prefix). Dir must be absolute: a
// relative one would resolve against wherever the daemon starts (/ under
// systemd), so the queue would move with the working directory.
func (c WALConfig) Validate() error {
	var errs []error
	switch {
	case c.Dir == "":
		errs = append(errs, errors.New("dir: must be set"))
	case !filepath.IsAbs(c.Dir):
		errs = append(errs, fmt.Errorf("dir: %q is not an absolute path", c.Dir))
	}
	if c.MaxSize < MinWALSize {
		errs = append(errs, fmt.Errorf("max_size: %s is below the minimum %s", c.MaxSize, Bytes(MinWALSize)))
	}
	switch c.Fsync {
	case "append", "segment":
	default:
		errs = append(errs, fmt.Errorf("fsync: %q must be append or segment", c.Fsync))
	}
	return errors.Join(errs...)
}
