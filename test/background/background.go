// Package background runs a component's Run(ctx) for the length of a test,
// the house lifecycle (New, then Run until ctx ends, returning only after
// its goroutines exit) checked at every use: when the test ends, the
// context is cancelled and Run must return nil within a bound.
package background

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// StopBound is how long Run may take to return after its context ends
// before the test fails (with every goroutine's stack).
const StopBound = 30 * time.Second

// Run calls run(ctx) in a goroutine until t ends. At cleanup it cancels ctx
// and fails t when run returns an error or has not returned within
// StopBound.
func Run(t testing.TB, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel", err)
			}
		case <-time.After(StopBound):
			buf := make([]byte, 1<<20)
			t.Errorf("Run did not return %s after cancel; goroutines:\n%s", StopBound, buf[:runtime.Stack(buf, true)])
		}
	})
}
