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

// TestScrapeBuffersReleased: scrape buffers are let go once a round's
// scrapes are done (not held between rounds), and the next round's new
// buffers are sized for the last round's mean body, so one huge body
// neither stays pinned nor sizes them all.
func TestScrapeBuffersReleased(t *testing.T) {
	r := newRig(t)
	small := sharedExposition(t)
	var big strings.Builder
	for big.Len() < 4<<20 {
		big.WriteString(small)
	}
	ids := []string{sandboxID(0), sandboxID(1), sandboxID(2), sandboxID(3)}
	r.sbs.set(ids...)
	for _, id := range ids {
		r.pods.set(id, cri.Pod{UID: "u", Name: "n", Namespace: "ns"})
	}
	ctx := context.Background()
	for _, tc := range []struct {
		bodies  [4]string
		mean    int
		comment string
	}{
		{[4]string{small, small, small, small}, len(small), "small bodies"},
		{[4]string{big.String(), small, small, small}, (big.Len() + 3*len(small)) / 4, "one big body among small ones"},
		{[4]string{small, small, small, small}, len(small), "small again"},
	} {
		for i, id := range ids {
			r.scraper.set(id, tc.bodies[i])
		}
		r.clock.Add(time.Minute) // every pull runs a round
		require.NoError(t, r.f.WriteMetrics(ctx, io.Discard, nil))
		n, _, hint := r.f.bufs.Pooled()
		require.Zero(t, n, "%s: buffers held after the round", tc.comment)
		require.Equal(t, tc.mean+tc.mean/8, hint, tc.comment)
	}
}
