package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The binary's read-only segments (text: the machine code; rodata: tables,
// strings, type descriptors and the PC-value tables the runtime reads to
// unwind stacks) are mapped from the executable file, and every page the
// process touched stays mapped and counts in its RSS (RssFile in
// /proc/PID/status). Startup touches most of them: some 300 package init
// functions spread over the whole text (aws, azure and google credential
// code, gRPC, protobuf registries, x/net/html tables), flag and config
// parsing, and the kernel maps up to 16 neighbouring pages around each
// fault (fault-around), so a 12 MiB text segment is 84 % resident at idle.
// Measured at 200 sandboxes (docs/benchmarks.md, session 5): ~22 MiB of
// file pages before the first round ends, ~14 MiB (with fault-around)
// needed from then on.
//
// releaseImagePages drops the process's mappings of those pages (after
// startup, releaseStartupPages): the pages stay in the page cache (clean,
// shared, reclaimable under pressure without any write-back), and the
// code still in use is mapped again by ordinary minor faults at its next
// run. Only private,
// never-written, read-only mappings of the executable are released (smaps
// "Anonymous: 0 kB" and "Swap: 0 kB": no copy-on-write page, resident or
// swapped out, that a release would revert to
// the file's bytes, e.g. a debugger's breakpoint, or the relocated
// read-only data of a -buildmode=pie build, checked: its RELRO mapping is
// skipped, text and rodata released); the writable data segment is never
// touched. Linux's madvise(2) MADV_DONTNEED documents
// that a private file mapping's pages then repopulate from the file.

// imageSegment is one read-only mapping of the executable, [start, end).
type imageSegment struct {
	start, end uintptr
	perms      string // as /proc/PID/maps spells them: r-xp, r--p
	anonKiB    int64  // resident copy-on-write pages in it (smaps Anonymous)
	swapKiB    int64  // swapped-out copy-on-write pages in it (smaps Swap)
}

// written reports whether the mapping holds copy-on-write pages, resident
// (smaps Anonymous) or swapped out (smaps Swap, which Anonymous does not
// count): MADV_DONTNEED would discard them, swap entries included, and the
// next access would read the file's bytes instead (for the RELRO mapping
// of a -buildmode=pie build: pointers without their relocations).
func (s imageSegment) written() bool { return s.anonKiB != 0 || s.swapKiB != 0 }

// size is the segment's length in bytes.
func (s imageSegment) size() int64 { return int64(s.end - s.start) }

// imageSegments reads /proc/PID/smaps text from r and returns the
// read-only private mappings of the file exe (a path as /proc/PID/exe
// reads, " (deleted)" suffix included when the file was replaced), in
// address order. It errors on a mapping line it cannot parse.
func imageSegments(r io.Reader, exe string) ([]imageSegment, error) {
	var segs []imageSegment
	cur := -1 // index in segs of the mapping whose fields follow, or -1
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") { // a mapping's header line
			cur = -1
			seg, path, err := parseMapping(line)
			if err != nil {
				return nil, err
			}
			if path == exe && (seg.perms == "r-xp" || seg.perms == "r--p") {
				segs = append(segs, seg)
				cur = len(segs) - 1
			}
			continue
		}
		if cur >= 0 && (fields[0] == "Anonymous:" || fields[0] == "Swap:") && len(fields) >= 2 {
			n, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("smaps: %q: %w", line, err)
			}
			if fields[0] == "Swap:" {
				segs[cur].swapKiB = n
			} else {
				segs[cur].anonKiB = n
			}
		}
	}
	return segs, sc.Err()
}

// parseMapping parses a /proc/PID/maps (or smaps header) line:
// "start-end perms offset dev inode [path]".
func parseMapping(line string) (imageSegment, string, error) {
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return imageSegment{}, "", fmt.Errorf("smaps: mapping line %q: want at least 5 fields", line)
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if !ok || err1 != nil || err2 != nil || end < start {
		return imageSegment{}, "", fmt.Errorf("smaps: mapping line %q: bad address range", line)
	}
	// The path is everything after the fifth field (the inode): it may
	// hold spaces.
	rest := line
	for range 5 {
		rest = strings.TrimLeft(rest, " \t")
		rest = rest[strings.IndexAny(rest+" ", " \t"):]
	}
	path := strings.TrimSpace(rest)
	return imageSegment{start: uintptr(start), end: uintptr(end), perms: fields[1]}, path, nil
}

// releaseImagePages releases (see above) the executable's read-only
// segments found in /proc/self/smaps, calling dontNeed for each (madvise
// MADV_DONTNEED in production). It returns the bytes of address space
// released (resident or not) and skips, without error, a segment holding
// copy-on-write pages, resident or swapped out (imageSegment.written). An error says which step failed; segments released
// before it stay released (harmless: they fault back in).
func releaseImagePages(dontNeed func(start, length uintptr) error) (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	segs, err := imageSegments(f, exe)
	_ = f.Close()
	if err != nil {
		return 0, err
	}
	if len(segs) == 0 {
		return 0, fmt.Errorf("no read-only mapping of %s in /proc/self/smaps", exe)
	}
	var released int64
	for _, s := range segs {
		if s.written() {
			continue
		}
		if err := dontNeed(s.start, s.end-s.start); err != nil {
			return released, fmt.Errorf("madvise %s %#x-%#x: %w", s.perms, s.start, s.end, err)
		}
		released += s.size()
	}
	return released, nil
}

// startupPagesWait bounds how long the daemon waits for its first round
// before it releases the startup pages anyway (pull only, a round runs
// only when someone pulls).
const startupPagesWait = 30 * time.Second

// releaseStartupPages releases the binary's pages (releaseImagePages with
// madviseDontNeed) twice: at once, which takes the inits, flag and config
// parsing and the wiring out of the RSS before the first round's full
// parses add their heap (else startup would set the process's RSS high
// water mark), and again after the first scrape round (first) or
// startupPagesWait, for the code only that round ran. It logs what it did
// and returns when done (true) or when ctx ends; a failure is logged,
// never fatal (the pages just stay mapped), and returns false.
func releaseStartupPages(ctx context.Context, first <-chan struct{}, logger *slog.Logger) bool {
	if _, err := releaseImagePages(madviseDontNeed); err != nil {
		logger.Warn("cannot release the binary's startup pages; RSS keeps them", "err", err)
		return false
	}
	t := time.NewTimer(startupPagesWait)
	defer t.Stop()
	select {
	case <-first:
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	n, err := releaseImagePages(madviseDontNeed)
	if err != nil {
		logger.Warn("cannot release the binary's startup pages; RSS keeps them", "err", err)
		return false
	}
	logger.Debug("released the binary's startup pages (they fault back in when used)", "bytes", n)
	return true
}

// imagePagesEvery is how often releasePagesEvery releases the binary's
// pages once the daemon runs: the scrape interval (a round's code faults
// back in once per round), at least minImagePagesEvery.
func imagePagesEvery(scrapeInterval time.Duration) time.Duration {
	return max(scrapeInterval, minImagePagesEvery)
}

// minImagePagesEvery bounds how often the pages are released: each release
// costs the faults of the code that runs next (measured at 200 sandboxes:
// 200-900 minor faults a 15 s round, fault-around mapping 64 KiB each).
const minImagePagesEvery = 5 * time.Second

// releasePagesEvery calls release (releaseImagePages with madviseDontNeed
// in production) every every until ctx ends. The pages of code that ran
// once in a while (a WAL segment cut, a metadata send, a CRI refresh, a
// burst of pulls) otherwise stay mapped for good: from 10 MiB after the
// startup release to 15-17 MiB at the peak of a harness run at 200
// sandboxes; released every round, the binary's pages in the RSS are
// 2-4 MiB between rounds and what one round and the pulls of that interval
// touch at most (docs/benchmarks.md, "Session 6, push side and runtime").
// A failure is logged and ends the releases (the pages just stay mapped).
func releasePagesEvery(ctx context.Context, every time.Duration, release func() (int64, error), logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := release(); err != nil {
			logger.Warn("cannot release the binary's pages; RSS keeps those in use", "err", err)
			return
		}
	}
}

// madviseDontNeed is madvise(start, length, MADV_DONTNEED).
func madviseDontNeed(start, length uintptr) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, length, syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}
