package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/receiver"
)

// TestReceiverStopped60s: the real Prometheus process is stopped for 60 s and
// started again. Every round scraped during the gap arrives, in order (a
// reordered sample would be refused with a 400 and counted as dropped), and
// the counter served by the shim steps by exactly one per round across the
// whole window: no round missing (but scrapes that failed), none repeated.
func TestReceiverStopped60s(t *testing.T) {
	t.Parallel()
	node := startNode(t, 3)
	ctx := ctxT(t)
	prom := startReceiver(t, receiver.Prometheus)
	start := time.Now()
	cfg := writeConfig(t, "1s", t.TempDir(), "64MiB", endpoint{name: "prom", url: prom.WriteURL()})
	m := startMonitor(t, node, "--config", cfg)

	id := node.IDs()[2]
	sel := fmt.Sprintf(`kata_agent_scrape_count{sandbox_id=%q}`, id)
	waitFor(t, 60*time.Second, 250*time.Millisecond, func() (bool, string) {
		got, err := prom.Export(ctx, sel, start, time.Now())
		if err != nil || len(got) != 1 {
			return false, fmt.Sprintf("err=%v series=%d", err, len(got))
		}
		return len(got[0].Values) >= 3, fmt.Sprintf("%d samples", len(got[0].Values))
	})

	prom.Stop()
	stopped := time.Now()
	scrapesAtStop := node.Shim(id).Scrapes()
	// 60 s of rounds pile up in the WAL; the condition is the elapsed outage.
	waitFor(t, 70*time.Second, time.Second, func() (bool, string) {
		return time.Since(stopped) >= 60*time.Second, "receiver still down"
	})
	gapRounds := node.Shim(id).Scrapes() - scrapesAtStop
	require.GreaterOrEqual(t, gapRounds, int64(50), "rounds kept being scraped during the outage")
	require.NoError(t, prom.Start(ctx))
	restarted := time.Now()

	var got []receiver.Series
	waitFor(t, 60*time.Second, 500*time.Millisecond, func() (bool, string) {
		var err error
		got, err = prom.Export(ctx, sel, start, time.Now())
		if err != nil || len(got) != 1 {
			return false, fmt.Sprintf("err=%v series=%d", err, len(got))
		}
		last := got[0].Values[len(got[0].Values)-1]
		// Delivered through the last round scraped after the restart.
		return got[0].Timestamps[len(got[0].Timestamps)-1] > restarted.UnixMilli(), fmt.Sprintf("%d samples, last %v", len(got[0].Values), last)
	})
	// Every round arrived once, in order; a hole only where a scrape
	// pushed nothing (a timeout on a loaded host moves the shim's counter
	// and is counted as failed).
	unpushed := m.account(t, "prom").unpushed
	deliveredInOrder(t, got[0], unpushed)
	require.GreaterOrEqual(t, float64(len(got[0].Values))+unpushed, float64(gapRounds+3))
	self := m.ownMetrics(t)
	require.Zero(t, self["kata_monitor_remote_write_samples_dropped_total"], "nothing refused (no out-of-order, no duplicate errors)")
	t.Logf("FAULT-RESULT: receiver stopped 60s: %d rounds scraped during the gap, %d samples of the series delivered in order after restart, in order, dropped 0, drained %.1fs after restart",
		gapRounds, len(got[0].Values), time.Since(restarted).Seconds())
}
