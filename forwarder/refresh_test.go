package forwarder

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStaleWhileRevalidate: while Run runs, a snapshot older than
// snapshot_max_age but younger than twice that is served at once and a
// single background round replaces it; an older one makes the caller wait
// for a round, as without Run.
//
// It runs in a testing/synctest bubble: Wait says when the background
// round has started or finished, no polling.
func TestStaleWhileRevalidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, withConfig(func(c *Config) { c.SnapshotMaxAge = 5 * time.Second }))
		r.sbs.set("aaa")
		r.scraper.set("aaa", "up 1\n")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.f.Run(ctx) }()
		defer func() {
			cancel()
			require.NoError(t, <-done)
		}()
		synctest.Wait() // Run's refresh loop is up

		const one, two = "# TYPE up untyped\nup{sandbox_id=\"aaa\"} 1\n", "# TYPE up untyped\nup{sandbox_id=\"aaa\"} 2\n"
		require.Equal(t, one, r.pull(t))
		require.Equal(t, 1, r.scraper.callCount("aaa"))

		// Stale: served without waiting although the refresh round hangs.
		gate := make(chan struct{})
		r.scraper.mu.Lock()
		r.scraper.gate = gate
		r.scraper.mu.Unlock()
		r.scraper.set("aaa", "up 2\n")
		r.clock.Add(6 * time.Second)
		for range 3 {
			assert.Equal(t, one, r.pull(t))
		}
		synctest.Wait()
		require.Equal(t, 2, r.scraper.callCount("aaa"), "one background round for several stale requests")
		close(gate)
		synctest.Wait()
		assert.Equal(t, two, r.pull(t))
		assert.Equal(t, 2, r.scraper.callCount("aaa"))
		assert.Equal(t, 2.0, r.counter(t, `kata_monitor_rounds_total`))

		// Too old to serve: this caller runs the round itself.
		r.scraper.set("aaa", "up 3\n")
		r.clock.Add(11 * time.Second)
		assert.Contains(t, r.pull(t), "} 3\n")
		assert.Equal(t, 3, r.scraper.callCount("aaa"))
	})
}
