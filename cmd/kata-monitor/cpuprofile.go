package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startCPUProfile profiles the whole process into the file named by
// KATA_MONITOR_CPUPROFILE, until the returned stop runs (on exit). It is a
// developer and support knob: /debug/pprof/* on the listener belongs to
// the shims (upstream's semantics), so the daemon's own CPU has no
// endpoint. Empty variable: nothing is started and stop does nothing.
func startCPUProfile(getenv func(string) string) (stop func() error, err error) {
	path := getenv("KATA_MONITOR_CPUPROFILE")
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("KATA_MONITOR_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("KATA_MONITOR_CPUPROFILE: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
