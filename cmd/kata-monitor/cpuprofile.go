package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"time"
)

// startCPUProfile profiles the whole process into the file named by
// KATA_MONITOR_CPUPROFILE, until the returned stop runs (on exit). It is a
// developer and support knob: /debug/pprof/* on the listener belongs to
// the shims (upstream's semantics), so the daemon's own CPU has no
// endpoint. KATA_MONITOR_CPUPROFILE_DELAY (a Go duration, e.g. 20s)
// starts the profile that long after start-up, so it shows the steady
// state without the first rounds' full parses; a stop before the delay
// leaves an empty file. Empty variable: nothing is started and stop does
// nothing. Errors name the variable at fault.
func startCPUProfile(getenv func(string) string) (stop func() error, err error) {
	return startCPUProfileNotify(getenv, func() {})
}

// startCPUProfileNotify is startCPUProfile that calls started once a
// delayed profile has started (or failed to), for tests.
func startCPUProfileNotify(getenv func(string) string, started func()) (stop func() error, err error) {
	path := getenv("KATA_MONITOR_CPUPROFILE")
	if path == "" {
		return func() error { return nil }, nil
	}
	var delay time.Duration
	if v := getenv("KATA_MONITOR_CPUPROFILE_DELAY"); v != "" {
		if delay, err = time.ParseDuration(v); err != nil || delay < 0 {
			return nil, fmt.Errorf("KATA_MONITOR_CPUPROFILE_DELAY: want a duration such as 20s, got %q", v)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("KATA_MONITOR_CPUPROFILE: %w", err)
	}
	if delay == 0 {
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("KATA_MONITOR_CPUPROFILE: %w", err)
		}
		return func() error {
			pprof.StopCPUProfile()
			return f.Close()
		}, nil
	}
	var (
		mu            sync.Mutex
		running, done bool
	)
	timer := time.AfterFunc(delay, func() {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			// An error (another profile running) leaves the file empty.
			running = pprof.StartCPUProfile(f) == nil
			started()
		}
	})
	return func() error {
		timer.Stop()
		mu.Lock()
		defer mu.Unlock()
		done = true
		if running {
			pprof.StopCPUProfile()
		}
		return f.Close()
	}, nil
}
