package forwarder

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/sources/cri"
)

// TestScrapeBufferShrinks: scrape buffers are pooled across sandboxes
// and rounds (at most one per concurrency slot), but a buffer much bigger
// than what it held goes back to the GC, so one huge body does not stay
// pinned.
func TestScrapeBufferShrinks(t *testing.T) {
	r := newRig(t)
	id := sandboxID(0)
	small := sharedExposition(t)
	var big strings.Builder
	for big.Len() < 4<<20 {
		big.WriteString(small)
	}
	r.sbs.set(id)
	r.pods.set(id, cri.Pod{UID: "u", Name: "n", Namespace: "ns"})
	ctx := context.Background()
	for _, tc := range []struct {
		body           string
		minCap, maxCap int
		comment        string
	}{
		{small, len(small), 4 * len(small), "small body: buffer kept"},
		{big.String(), big.Len(), 2 * big.Len(), "big body: its buffer fits it, kept"},
		{small, 0, 0, "small body in the big buffer: buffer dropped"},
		{small, len(small), 4 * len(small), "small again: a fitting buffer"},
	} {
		r.scraper.set(id, tc.body)
		r.clock.Add(time.Minute) // every pull runs a round
		require.NoError(t, r.f.WriteMetrics(ctx, io.Discard, nil))
		n, got := r.f.bufs.Pooled()
		require.LessOrEqual(t, n, 1, tc.comment)
		require.GreaterOrEqual(t, got, tc.minCap, tc.comment)
		require.LessOrEqual(t, got, tc.maxCap, tc.comment)
	}
}

// TestScrapeBuffersBounded: however many sandboxes, the pool keeps at
// most one buffer per concurrency slot.
func TestScrapeBuffersBounded(t *testing.T) {
	r := newRig(t, func(_ *rig, c *Config, _ *Deps) { c.Concurrency = 3 })
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = sandboxID(i)
		r.scraper.set(ids[i], "up 1\n")
	}
	r.sbs.set(ids...)
	for range 3 {
		r.clock.Add(time.Minute)
		require.NoError(t, r.f.WriteMetrics(context.Background(), io.Discard, nil))
		n, _ := r.f.bufs.Pooled()
		require.Positive(t, n, "buffers are reused")
		require.LessOrEqual(t, n, 3)
	}
}
