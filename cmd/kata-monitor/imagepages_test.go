package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// smapsSample is /proc/PID/smaps as Linux writes it, cut to the lines the
// parser reads, with one mapping of each kind that must not be released.
const smapsSample = `00400000-0105b000 r-xp 00000000 fe:00 9994659                            /usr/bin/kata-monitor
Size:              12652 kB
Rss:               10604 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
0105b000-01dea000 r--p 00c5b000 fe:00 9994659                            /usr/bin/kata-monitor
Rss:                9788 kB
Anonymous:             0 kB
01dea000-01e90000 rw-p 019ea000 fe:00 9994659                            /usr/bin/kata-monitor
Rss:                 536 kB
Anonymous:           212 kB
01e90000-03edf000 rw-p 00000000 00:00 0 
Rss:                 128 kB
Anonymous:           128 kB
7f0000000000-7f0000010000 r-xp 00000000 fe:00 1234                       /usr/lib/other.so
Anonymous:             0 kB
7fffa4010000-7fffa4031000 rw-p 00000000 00:00 0                          [stack]
Anonymous:            16 kB
`

func TestImageSegments(t *testing.T) {
	tests := []struct {
		name, smaps, exe string
		want             []imageSegment
		err              string
	}{
		{"text and rodata of the executable, nothing else", smapsSample, "/usr/bin/kata-monitor", []imageSegment{
			{start: 0x400000, end: 0x105b000, perms: "r-xp"},
			{start: 0x105b000, end: 0x1dea000, perms: "r--p"},
		}, ""},
		{"another executable's path matches nothing", smapsSample, "/usr/bin/other", nil, ""},
		{"a written (copy-on-write) text page is reported, so the caller skips it",
			"00400000-00401000 r-xp 00000000 fe:00 1 /bin/km\nAnonymous:             4 kB\n", "/bin/km",
			[]imageSegment{{start: 0x400000, end: 0x401000, perms: "r-xp", anonKiB: 4}}, ""},
		{"swapped-out copy-on-write pages (Anonymous counts only resident ones) are reported too",
			"00400000-00401000 r--p 00000000 fe:00 1 /bin/km\nAnonymous:             0 kB\nSwap:                 8 kB\nSwapPss:              8 kB\n", "/bin/km",
			[]imageSegment{{start: 0x400000, end: 0x401000, perms: "r--p", swapKiB: 8}}, ""},
		{"a Swap field that is not a number",
			"00400000-00402000 r--p 00000000 fe:00 1 /bin/km\nSwap: lots kB\n", "/bin/km", nil, `"Swap: lots kB"`},
		{"a path with spaces and a replaced file",
			"00400000-00402000 r--p 00000000 fe:00 1    /opt/kata monitor/km (deleted)\nAnonymous: 0 kB\n", "/opt/kata monitor/km (deleted)",
			[]imageSegment{{start: 0x400000, end: 0x402000, perms: "r--p"}}, ""},
		{"a header without its fields", "00400000-00402000 r--p\n", "/bin/km", nil, "want at least 5 fields"},
		{"an address range that is not hex", "0040zz00-00402000 r--p 00000000 fe:00 1 /bin/km\n", "/bin/km", nil, "bad address range"},
		{"an Anonymous field that is not a number",
			"00400000-00402000 r--p 00000000 fe:00 1 /bin/km\nAnonymous: lots kB\n", "/bin/km", nil, `"Anonymous: lots kB"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := imageSegments(strings.NewReader(tc.smaps), tc.exe)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestReleaseImagePagesLowersRSS releases this test binary's own pages for
// real: its file-backed RSS falls, and the code released keeps running
// (it faults back in from the page cache).
func TestReleaseImagePagesLowersRSS(t *testing.T) {
	// What is resident depends on what ran before (an earlier release, in
	// this run or with -count=2, leaves 7-8 MiB of 26 where 5 remain after
	// a release), so every page of the image is mapped first.
	touchImagePages(t)
	before := rssFileKiB(t)
	released, err := releaseImagePages(madviseDontNeed)
	require.NoError(t, err)
	after := rssFileKiB(t)
	t.Logf("RssFile %d -> %d KiB, %d KiB of address space released", before, after, released/1024)
	require.Greater(t, released, int64(1<<20), "the test binary's text and rodata are over 1 MiB")
	require.Less(t, after, before/2, "file-backed RSS at least halves")

	// Everything still runs: parse a sample again, and release again.
	segs, err := imageSegments(strings.NewReader(smapsSample), "/usr/bin/kata-monitor")
	require.NoError(t, err)
	require.Len(t, segs, 2)
	again, err := releaseImagePages(madviseDontNeed)
	require.NoError(t, err)
	require.Equal(t, released, again)
}

// TestReleaseImagePagesCalls: only the executable's read-only private
// mappings reach madvise; a failing madvise is an error naming the range.
func TestReleaseImagePagesCalls(t *testing.T) {
	var calls [][2]uintptr
	n, err := releaseImagePages(func(start, length uintptr) error {
		calls = append(calls, [2]uintptr{start, length})
		return nil
	})
	require.NoError(t, err)
	f, err := os.Open("/proc/self/smaps")
	require.NoError(t, err)
	defer f.Close()
	exe, err := os.Readlink("/proc/self/exe")
	require.NoError(t, err)
	segs, err := imageSegments(f, exe)
	require.NoError(t, err)
	var want [][2]uintptr
	var sum int64
	for _, s := range segs {
		require.Contains(t, []string{"r-xp", "r--p"}, s.perms)
		if !s.written() {
			want = append(want, [2]uintptr{s.start, s.end - s.start})
			sum += s.size()
		}
	}
	require.NotEmpty(t, want)
	require.Equal(t, want, calls)
	require.Equal(t, sum, n)

	_, err = releaseImagePages(func(uintptr, uintptr) error { return errors.New("refused") })
	require.ErrorContains(t, err, "madvise r")
	require.ErrorContains(t, err, "refused")
}

// rssFileKiB reads RssFile from /proc/self/status.
// touchImagePages maps in every page of this test binary's read-only
// segments (those releaseImagePages releases): reading them through
// /proc/self/mem faults them into this process's page tables.
func touchImagePages(t *testing.T) {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	require.NoError(t, err)
	smaps, err := os.Open("/proc/self/smaps")
	require.NoError(t, err)
	segs, err := imageSegments(smaps, exe)
	require.NoError(t, smaps.Close())
	require.NoError(t, err)
	mem, err := os.Open("/proc/self/mem")
	require.NoError(t, err)
	defer mem.Close()
	buf := make([]byte, 1<<20)
	for _, s := range segs {
		for off := int64(s.start); off < int64(s.end); off += int64(len(buf)) {
			n := min(int64(len(buf)), int64(s.end)-off)
			_, err := mem.ReadAt(buf[:n], off)
			require.NoError(t, err, "read %#x+%d of %s", off, n, exe)
		}
	}
}

func rssFileKiB(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestReleasePagesEvery: the pages are released every period until ctx
// ends, and a failure ends the releases after one warning.
func TestReleasePagesEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var calls int
		done := make(chan struct{})
		go func() {
			releasePagesEvery(ctx, 15*time.Second, func() (int64, error) { calls++; return 1, nil }, slog.New(slog.DiscardHandler))
			close(done)
		}()
		time.Sleep(46 * time.Second)
		synctest.Wait()
		require.Equal(t, 3, calls, "at 15, 30 and 45 s")
		cancel()
		<-done

		var buf bytes.Buffer
		calls = 0
		go func() {
			releasePagesEvery(t.Context(), 15*time.Second, func() (int64, error) { calls++; return 0, errors.New("madvise: EINVAL") },
				slog.New(slog.NewTextHandler(&buf, nil)))
		}()
		time.Sleep(time.Hour)
		synctest.Wait()
		require.Equal(t, 1, calls, "a failure ends the releases")
		require.Contains(t, buf.String(), "EINVAL")
	})
	require.Equal(t, 15*time.Second, imagePagesEvery(15*time.Second))
	require.Equal(t, minImagePagesEvery, imagePagesEvery(time.Second))
}

// TestImageSegmentWritten: a segment with copy-on-write pages is never
// released, whether they are resident or swapped out (a swapped-out page
// is not in smaps Anonymous; MADV_DONTNEED would drop its swap entry and
// the file's unrelocated bytes would come back).
func TestImageSegmentWritten(t *testing.T) {
	for _, tc := range []struct {
		seg  imageSegment
		want bool
	}{
		{imageSegment{}, false},
		{imageSegment{anonKiB: 4}, true},
		{imageSegment{swapKiB: 4}, true},
		{imageSegment{anonKiB: 4, swapKiB: 4}, true},
	} {
		require.Equal(t, tc.want, tc.seg.written(), "%+v", tc.seg)
	}
}
