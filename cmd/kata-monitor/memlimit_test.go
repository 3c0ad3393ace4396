package main

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/stretchr/testify/require"
)

func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	logger := slog.New(slog.DiscardHandler)
	t.Setenv("AUTOMEMLIMIT", "") // set, so that t.Setenv restores it
	os.Unsetenv("AUTOMEMLIMIT")
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")

	got, err := setMemoryLimit(logger, memlimit.Limit(1000))
	require.NoError(t, err)
	require.EqualValues(t, 900, got, "90% of the cgroup limit")
	require.EqualValues(t, 900, debug.SetMemoryLimit(-1))

	got, err = setMemoryLimit(logger, func() (uint64, error) { return 0, memlimit.ErrNoLimit })
	require.NoError(t, err)
	require.EqualValues(t, math.MaxInt64, got, "no cgroup limit: no runtime limit")

	got, err = setMemoryLimit(logger, func() (uint64, error) { return 0, memlimit.ErrNoCgroup })
	require.NoError(t, err, "outside any cgroup: no limit, not an error")
	require.EqualValues(t, math.MaxInt64, got)

	debug.SetMemoryLimit(123 << 20)
	_, err = setMemoryLimit(logger, func() (uint64, error) { return 0, errors.New("unreadable") })
	require.Error(t, err, "reported for a warning")
	require.EqualValues(t, 123<<20, debug.SetMemoryLimit(-1), "an error leaves the limit alone")

	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	_, err = setMemoryLimit(logger, memlimit.Limit(1000))
	require.NoError(t, err)
	require.EqualValues(t, 1<<30, debug.SetMemoryLimit(-1), "GOMEMLIMIT wins")
	os.Unsetenv("GOMEMLIMIT")

	t.Setenv("AUTOMEMLIMIT", "0.5")
	got, err = setMemoryLimit(logger, memlimit.Limit(1000))
	require.NoError(t, err)
	require.EqualValues(t, 500, got, "AUTOMEMLIMIT sets the ratio")
}

func TestDefaultGCPercent(t *testing.T) {
	for _, tc := range []struct {
		gogc string
		want int
		set  bool
	}{
		{"", gcPercent, true},
		{"100", 0, false},
		{"off", 0, false},
	} {
		got, set := defaultGCPercent(envWith("GOGC", tc.gogc))
		require.Equal(t, tc.set, set, "GOGC=%q", tc.gogc)
		require.Equal(t, tc.want, got, "GOGC=%q", tc.gogc)
	}
}

func TestStartCPUProfile(t *testing.T) {
	stop, err := startCPUProfile(envWith("KATA_MONITOR_CPUPROFILE", ""))
	require.NoError(t, err)
	require.NoError(t, stop())

	path := filepath.Join(t.TempDir(), "cpu.pb.gz")
	stop, err = startCPUProfile(envWith("KATA_MONITOR_CPUPROFILE", path))
	require.NoError(t, err)
	require.NoError(t, stop())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Positive(t, fi.Size(), "a profile was written")

	_, err = startCPUProfile(envWith("KATA_MONITOR_CPUPROFILE", filepath.Join(t.TempDir(), "missing", "cpu.pb.gz")))
	require.ErrorContains(t, err, "KATA_MONITOR_CPUPROFILE")
}

// TestStartCPUProfileDelay: with KATA_MONITOR_CPUPROFILE_DELAY the
// profile starts late (a stop before then leaves an empty file, a stop
// after it a profile); a bad duration is refused by name.
func TestStartCPUProfileDelay(t *testing.T) {
	env := func(path, delay string) func(string) string {
		return func(k string) string {
			switch k {
			case "KATA_MONITOR_CPUPROFILE":
				return path
			case "KATA_MONITOR_CPUPROFILE_DELAY":
				return delay
			}
			return ""
		}
	}
	early := filepath.Join(t.TempDir(), "early.pb.gz")
	stop, err := startCPUProfile(env(early, "1h"))
	require.NoError(t, err)
	require.NoError(t, stop())
	fi, err := os.Stat(early)
	require.NoError(t, err)
	require.Zero(t, fi.Size(), "stopped before the delay: nothing profiled")

	late := filepath.Join(t.TempDir(), "late.pb.gz")
	started := make(chan struct{})
	stop, err = startCPUProfileNotify(env(late, "1ms"), func() { close(started) })
	require.NoError(t, err)
	<-started
	require.NoError(t, stop())
	fi, err = os.Stat(late)
	require.NoError(t, err)
	require.Positive(t, fi.Size(), "a profile was written")

	_, err = startCPUProfile(env(late, "soon"))
	require.ErrorContains(t, err, "KATA_MONITOR_CPUPROFILE_DELAY")
}

// envWith is an environment (os.Getenv's shape) where only key is set.
func envWith(key, value string) func(string) string {
	return func(k string) string {
		if k == key {
			return value
		}
		return ""
	}
}
