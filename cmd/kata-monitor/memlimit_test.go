package main

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

func TestDefaultMemoryLimit(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name       string
		gomemlimit string
		files      fstest.MapFS
		want       int64
		source     string
	}{
		{"no cgroup files", "", fstest.MapFS{}, 0, ""},
		{"GOMEMLIMIT set wins", "1GiB", fstest.MapFS{"sys/fs/cgroup/memory.max": file("1000\n")}, 0, ""},
		{"v2 namespaced root", "", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("536870912\n"),
		}, 483183820, "/sys/fs/cgroup/memory.max"},
		{"v2 own group of a systemd unit", "", fstest.MapFS{
			"proc/self/cgroup": file("0::/system.slice/kata-monitor.service\n"),
			"sys/fs/cgroup/system.slice/kata-monitor.service/memory.max": file("1000\n"),
			"sys/fs/cgroup/memory.max":                                   file("max\n"),
		}, 900, "/sys/fs/cgroup/system.slice/kata-monitor.service/memory.max"},
		{"v2 unlimited", "", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("max\n"),
		}, 0, ""},
		{"v1 memory controller", "", fstest.MapFS{
			"proc/self/cgroup": file("5:cpu,cpuacct:/\n4:memory:/pod1\n0::/\n"),
			"sys/fs/cgroup/memory/pod1/memory.limit_in_bytes": file("2000\n"),
		}, 1800, "/sys/fs/cgroup/memory/pod1/memory.limit_in_bytes"},
		{"v1 unlimited", "", fstest.MapFS{
			"proc/self/cgroup":                           file("4:memory:/\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("9223372036854771712\n"),
		}, 0, ""},
		{"garbage", "", fstest.MapFS{"sys/fs/cgroup/memory.max": file("lots\n")}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, src := defaultMemoryLimit(envWith("GOMEMLIMIT", tc.gomemlimit), tc.files)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.source, src)
		})
	}
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

// envWith is an environment (os.Getenv's shape) where only key is set.
func envWith(key, value string) func(string) string {
	return func(k string) string {
		if k == key {
			return value
		}
		return ""
	}
}
