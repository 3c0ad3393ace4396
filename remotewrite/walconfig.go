package remotewrite

import (
	"errors"
	"fmt"
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

// minWALSize keeps the budget above a few segments' worth, below which the
// queue would drop data on every round.
const minWALSize = mib

// Validate checks the block; errors name the field ("wal." is the caller's
// prefix).
func (c WALConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: must be set")
	}
	if c.MaxSize < minWALSize {
		return fmt.Errorf("max_size: %s is below the minimum %s", c.MaxSize, Bytes(minWALSize))
	}
	switch c.Fsync {
	case "append", "segment":
	default:
		return fmt.Errorf("fsync: %q must be append or segment", c.Fsync)
	}
	return nil
}
