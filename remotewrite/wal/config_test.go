package wal

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig()
	valid.Dir = "/var/lib/kata-monitor/wal/ep"
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"zero_values", func(c *Config) { *c = Config{Dir: "x"} }, ""},
		{"segment_fsync", func(c *Config) { c.Fsync = FsyncSegment }, ""},
		{"no_dir", func(c *Config) { c.Dir = "" }, "dir: must not be empty"},
		{"negative_max_size", func(c *Config) { c.MaxSize = -1 }, "max_size: must be >= 0"},
		{"negative_segment", func(c *Config) { c.SegmentSize = -pageSize }, "segment_size: must be >= 0"},
		{"unaligned_segment", func(c *Config) { c.SegmentSize = 1000 }, "segment_size: must be a multiple of 32768"},
		{"negative_memory", func(c *Config) { c.MemoryBytes = -1 }, "memory_bytes: must be >= 0"},
		{"bad_fsync", func(c *Config) { c.Fsync = "always" }, `fsync: must be "append" or "segment"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestDerivedSegmentSize(t *testing.T) {
	for _, tc := range []struct {
		maxSize int64
		want    int
	}{
		{0, 64 << 20},
		{1 << 20, 256 << 10},
		{16 << 20, 1 << 20},
		{100<<20 + 12345, 6400 << 10},
		{10 << 30, 64 << 20},
	} {
		got := Config{Dir: "x", MaxSize: tc.maxSize}.withDefaults()
		require.Equal(t, tc.want, got.SegmentSize, "max_size %d", tc.maxSize)
		require.Zero(t, got.SegmentSize%pageSize)
		require.Equal(t, int64(DefaultMemoryBytes), got.MemoryBytes)
		require.Equal(t, FsyncAppend, got.Fsync)
	}
	require.Equal(t, 64<<10, Config{Dir: "x", MaxSize: 1 << 30, SegmentSize: 64 << 10}.withDefaults().SegmentSize, "explicit size kept")
}
