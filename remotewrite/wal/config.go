package wal

import (
	"errors"
	"fmt"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// FsyncPolicy names when appended data is forced to stable storage. It is a
// named policy rather than a knob because it decides what a power cut costs
// (see the package documentation).
type FsyncPolicy string

const (
	// FsyncAppend fsyncs the active segment at the end of every Append call:
	// an Append that returned nil survives a power cut.
	FsyncAppend FsyncPolicy = "append"
	// FsyncSegment fsyncs a segment only when it is closed (cut or Close):
	// a power cut can lose the unsynced tail of the active segment.
	FsyncSegment FsyncPolicy = "segment"
)

const (
	pageSize = disk.PageSize

	minDerivedSegment = 256 << 10
	maxDerivedSegment = 64 << 20

	// DefaultMemoryBytes is Config.MemoryBytes's default: no in-memory
	// tail. A caught-up reader reads the blocks just written back from the
	// active segment through the cursor it keeps open, which the kernel
	// serves from the page cache; a tail would be a second copy of them in
	// the heap (~4.8 MiB at 200 sandboxes, issue 14). A queue shared by
	// tenants gives its streams one (remotewrite sizes it), as each
	// stream's cursor otherwise reads every tenant's records.
	DefaultMemoryBytes = 0
)

// Config configures one Queue. The zero value of every field except Dir
// selects a documented default, so a Config decoded from YAML over
// DefaultConfig() and one built in code behave the same.
type Config struct {
	// Dir is this queue's own directory (the caller passes
	// <wal.dir>/<endpoint name>). Its base name becomes the "endpoint" label
	// unless Name is set.
	Dir string `yaml:"dir"`
	// Name, when set, is the "endpoint" label and log field instead of
	// Dir's base name (a tenant-routed endpoint's WAL lives in
	// <wal.dir>/<endpoint name>/tenants.wal/ and is labelled with its
	// endpoint).
	Name string `yaml:"-"`
	// Tenants, when set, makes the queue one shared by tenants: no plain
	// stream, a Stream per tenant (remotewrite/tenant's Router).
	Tenants bool `yaml:"-"`
	// AckInterval, when > 0, makes Ack write every stream's positions to
	// the fast ack file (one pwrite, no fsync) and the fsynced ack file
	// only by a timer at most this long after the Ack, at Close (and
	// before a Next when the fast write failed): a round's acks cost no
	// fsync. A SIGKILL then resends at most each stream's in-flight group,
	// a power cut at most the groups acknowledged in the last AckInterval
	// (see doc.go). 0: every Ack writes the fsynced ack file.
	AckInterval time.Duration `yaml:"-"`
	// MaxSize is the disk budget in bytes for segment files; 0 = unlimited.
	// Past it the oldest segments are deleted and their unsent samples counted
	// as dropped.
	MaxSize int64 `yaml:"max_size"`
	// SegmentSize is the size in bytes at which a segment is cut; a multiple
	// of 32 KiB. 0 derives it: MaxSize/16 clamped to [256 KiB, 64 MiB] and
	// rounded down to 32 KiB (64 MiB when MaxSize is 0), so the budget is
	// enforced with a granularity of about 1/16.
	SegmentSize int `yaml:"segment_size"`
	// MemoryBytes bounds a copy of the newest blocks kept in memory (per
	// stream) so that a caught-up reader does not read them back from the
	// segment; 0 (DefaultMemoryBytes) keeps none.
	MemoryBytes int64 `yaml:"memory_bytes"`
	// Fsync is the fsync policy; "" = FsyncAppend.
	Fsync FsyncPolicy `yaml:"fsync"`
}

// DefaultConfig returns the defaults, without Dir (which is per endpoint).
func DefaultConfig() Config {
	return Config{MemoryBytes: DefaultMemoryBytes, Fsync: FsyncAppend}
}

// Validate reports the first invalid field, named as in YAML.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("dir: must not be empty")
	case c.MaxSize < 0:
		return errors.New("max_size: must be >= 0")
	case c.SegmentSize < 0:
		return errors.New("segment_size: must be >= 0")
	case c.SegmentSize%pageSize != 0:
		return fmt.Errorf("segment_size: must be a multiple of %d bytes", pageSize)
	case c.MemoryBytes < 0:
		return errors.New("memory_bytes: must be >= 0")
	}
	switch c.Fsync {
	case "", FsyncAppend, FsyncSegment:
	default:
		return fmt.Errorf("fsync: must be %q or %q, got %q", FsyncAppend, FsyncSegment, c.Fsync)
	}
	return nil
}

// withDefaults resolves every "0 = default" field.
func (c Config) withDefaults() Config {
	if c.SegmentSize == 0 {
		c.SegmentSize = derivedSegmentSize(c.MaxSize)
	}
	if c.Fsync == "" {
		c.Fsync = FsyncAppend
	}
	return c
}

func derivedSegmentSize(maxSize int64) int {
	if maxSize == 0 {
		return maxDerivedSegment
	}
	s := min(max(maxSize/16, minDerivedSegment), maxDerivedSegment)
	return int(s / pageSize * pageSize)
}
