package cri

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSchedule runs the refresh schedule in a testing/synctest bubble, so
// its times are exact. The gRPC side stays outside: a connection's I/O is
// not durably blocking, so Cache.Run itself is tested against the real fake
// CRI in cache_test.go.
// Long because the schedule's steps are checked in sequence in one synctest
// bubble.
func TestSchedule(t *testing.T) {
	const interval, minInterval = time.Hour, 200 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		var mu sync.Mutex
		var calls []time.Duration        // since start
		took := func() []time.Duration { // and forget
			mu.Lock()
			defer mu.Unlock()
			c := calls
			calls = nil
			return c
		}
		wake := make(chan struct{}, 1)
		ask := func() { // what Lookup does for an unknown id
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		done := make(chan struct{})
		go func() {
			schedule(ctx, interval, minInterval, wake, func() {
				mu.Lock()
				calls = append(calls, time.Since(start))
				mu.Unlock()
			})
			close(done)
		}()
		synctest.Wait()
		require.Equal(t, []time.Duration{0}, took(), "a refresh at start")

		// Lookups hammering an unknown id every millisecond for a second:
		// one refresh per minInterval, the first minInterval after start.
		for range 1000 {
			ask()
			time.Sleep(time.Millisecond)
		}
		synctest.Wait()
		var want []time.Duration
		for i := 1; i <= 5; i++ {
			want = append(want, time.Duration(i)*minInterval)
		}
		require.Equal(t, want, took())

		// Quiet: the next refresh is interval after the last one.
		time.Sleep(interval)
		synctest.Wait()
		require.Equal(t, []time.Duration{5*minInterval + interval}, took())

		// A lookup long after the last refresh is served at once.
		time.Sleep(time.Minute)
		ask()
		synctest.Wait()
		require.Equal(t, []time.Duration{5*minInterval + interval + time.Minute}, took())

		cancel()
		<-done
	})
}
