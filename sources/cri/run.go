package cri

import (
	"context"
	"time"
)

// Run refreshes the cache at start, every RefreshInterval, and when Lookup
// met an unknown id (at most once per MinRefreshInterval, requests
// coalesced). A failing runtime is logged once per failure streak, at warn,
// and its recovery at info. Run blocks until ctx ends, closes the gRPC
// connection and returns nil. Call it once.
func (c *Cache) Run(ctx context.Context) error {
	defer func() {
		// Close only fails if already closed; nothing is lost either way.
		_ = c.conn.Close()
	}()

	failing := false
	refresh := func() {
		err := c.Refresh(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && !failing:
			failing = true
			c.logger.Warn("cri unreachable, pod labels stay as last known", "endpoint", c.cfg.Endpoint, "err", err)
		case err != nil:
			c.logger.Debug("cri still unreachable", "err", err)
		case failing:
			failing = false
			c.logger.Info("cri reachable again", "endpoint", c.cfg.Endpoint)
		}
	}
	schedule(ctx, c.cfg.RefreshInterval, c.cfg.MinRefreshInterval, c.wake, refresh)
	return nil
}

// schedule calls refresh at once, then every interval after the previous
// call, and when wake receives, but never sooner than minInterval after
// the previous call; wakes that arrive while it waits or refreshes
// coalesce into one. It returns when ctx ends.
func schedule(ctx context.Context, interval, minInterval time.Duration, wake chan struct{}, refresh func()) {
	last := time.Now()
	refresh()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-wake:
			if wait := minInterval - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
		// Requests that arrived while waiting are served by this refresh;
		// those arriving during it ask again.
		select {
		case <-wake:
		default:
		}
		last = time.Now()
		refresh()
		ticker.Reset(interval)
	}
}
