package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/dashboard"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
	"github.com/kata-containers/kata-monitor/test/receiver"
)

// TestPushBadTimestamps (issue 10, item 1): one shim serves a gauge whose
// explicit timestamp stays frozen while its value changes, and one whose
// timestamp steps back 1 s per scrape, next to its normal series and three
// healthy sandboxes; the receiver is Prometheus, which refuses a whole
// request for one such sample. Only the bad samples may be lost: the
// healthy sandboxes lose no round, the bad sandbox none of its other
// series, the receiver refuses nothing, and the drops are counted exactly
// (one per scrape after the first, per bad series).
func TestPushBadTimestamps(t *testing.T) {
	t.Parallel()
	node := startNode(t, 3)
	healthy := node.IDs()
	bad, err := node.Add()
	require.NoError(t, err)
	t0 := time.Now().UnixMilli()
	node.Shim(bad).SetBodyFunc(func(n int64) []byte {
		var b strings.Builder
		b.Write(fakeshim.ExpositionAt(nil, n))
		fmt.Fprintf(&b, "# TYPE kata_test_frozen gauge\nkata_test_frozen %d %d\n", n, t0)
		fmt.Fprintf(&b, "# TYPE kata_test_backwards gauge\nkata_test_backwards %d %d\n", n, t0-n*1000)
		return []byte(b.String())
	})
	ctx := ctxT(t)
	prom := startReceiver(t, receiver.Prometheus)
	start := time.Now()
	cfg := writeConfig(t, "250ms", t.TempDir(), "64MiB", endpoint{name: "prom", url: prom.WriteURL()})
	m := startMonitor(t, node, "--config", cfg)

	require.Eventually(t, func() bool { return node.Shim(bad).Scrapes() >= 20 }, 60*time.Second, 100*time.Millisecond)
	badShim := node.Shim(bad)
	a := quiesce(t, m, node, "prom", 60*time.Second)
	v := m.ownMetrics(t)
	scrapes := float64(badShim.Scrapes())
	dup := v[`kata_monitor_forwarder_samples_dropped_total{reason="duplicate_timestamp"}`]
	ooo := v[`kata_monitor_forwarder_samples_dropped_total{reason="out_of_order"}`]
	failed := v["kata_monitor_scrape_failed_count"]

	require.Zero(t, a.dropped(), "the receiver refused nothing: %s", a)
	require.Equal(t, a.appended, a.sent+a.dropped()+a.pending, "appended = sent + dropped + pending: %s", a)
	require.Zero(t, v[`kata_monitor_rounds_total{trigger="pull"}`], "no pull round scraped a shim")
	// Every scrape of the bad shim but the first dropped one sample of each
	// bad series (exactly, unless a scrape failed: then within the failures).
	require.Equal(t, dup, ooo)
	require.LessOrEqual(t, dup, scrapes-1)
	require.GreaterOrEqual(t, dup, scrapes-1-failed, "scrapes %v, failed %v", scrapes, failed)
	require.Equal(t, 2, strings.Count(m.log.String(), "does not advance its series"), "logged once per series")

	rounds := 0
	for _, id := range append(healthy, bad) {
		s, dups := counterSeries(t, prom, id, start)
		require.Zero(t, dups)
		// No round lost but scrapes that failed (a timeout on a loaded
		// host: the shim's counter moved, nothing was pushed); no pull
		// round ran (checked above).
		deliveredInOrder(t, s, a.unpushed)
		rounds += len(s.Values)
	}
	for _, name := range []string{"kata_test_frozen", "kata_test_backwards"} {
		got, err := prom.Export(ctx, name, time.UnixMilli(t0-60_000), time.Now())
		require.NoError(t, err)
		require.Len(t, got, 1)
		// The value is the scrape's number: 1, unless the first scrapes of
		// the bad shim failed.
		require.Len(t, got[0].Values, 1, "%s: only the first sample was queued: %v", name, got[0].Values)
		require.LessOrEqual(t, got[0].Values[0], 1+failed, "%s: the first sample scraped was queued", name)
	}
	result(t, "4 sandboxes, 250 ms rounds, bad shim scraped %.0f times: dropped(duplicate_timestamp) %.0f, dropped(out_of_order) %.0f; "+
		"receiver refused 0; %d rounds of the 4 counter series arrived, no gap but failed scrapes; %s", scrapes, dup, ooo, rounds, a)
}

// TestPushOnlyHealthDashboard (issue 10, item 5): a node nobody scrapes
// pushes into VictoriaMetrics; every query of the Grafana health dashboard
// (its node variable included) answers from the pushed data alone.
func TestPushOnlyHealthDashboard(t *testing.T) {
	t.Parallel()
	node := startNode(t, 2)
	ctx := ctxT(t)
	vm := startReceiver(t, receiver.VictoriaMetrics)
	// The default push_self_metrics (true); /metrics is never requested.
	cfg := writeConfigWith(t, "", "250ms", t.TempDir(), "64MiB", endpoint{name: "vm", url: vm.WriteURL()})
	m := startMonitor(t, node, "--config", cfg)

	d, err := dashboard.Load("../../deploy/grafana/kata-monitor-health.json")
	require.NoError(t, err)
	var exprs []string
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		// label_values(EXPR, LABEL): EXPR must have series with LABEL.
		q := dashboard.QueryText(v.Query)
		inner, ok := strings.CutPrefix(q, "label_values(")
		require.True(t, ok, "variable %s: %s", v.Name, q)
		i := strings.LastIndexByte(inner, ',')
		require.Positive(t, i, "variable %s: %s", v.Name, q)
		label := strings.TrimSpace(strings.TrimSuffix(inner[i+1:], ")"))
		exprs = append(exprs, fmt.Sprintf("count by (%s) (%s)", label, inner[:i]))
	}
	for _, q := range d.Queries() {
		exprs = append(exprs, q.Expr)
	}
	require.Greater(t, len(exprs), 10)
	expand := strings.NewReplacer(`"$node"`, `"e2e-node"`, "$__rate_interval", "30s", "$__interval", "30s")
	waitFor(t, 60*time.Second, time.Second, func() (bool, string) {
		var empty []string
		for _, e := range exprs {
			got, err := vm.Instant(ctx, expand.Replace(e), time.Now())
			if err != nil || len(got) == 0 {
				empty = append(empty, fmt.Sprintf("%s (err %v)", e, err))
			}
		}
		return len(empty) == 0, fmt.Sprintf("%d of %d queries empty: %s", len(empty), len(exprs), strings.Join(empty, "; "))
	})
	// The self-metrics carry the node label and no scrape labels.
	got, err := vm.Instant(ctx, `kata_monitor_running_shim_count`, time.Now())
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, map[string]string{"__name__": "kata_monitor_running_shim_count", "node": "e2e-node"}, got[0])
	v := m.ownMetrics(t)
	result(t, "push-only node, VictoriaMetrics: all %d health dashboard queries answered; %.0f self samples per round (%.0f rounds)",
		len(exprs), v["kata_monitor_forwarder_self_samples_pushed_total"]/v[`kata_monitor_rounds_total{trigger="schedule"}`],
		v[`kata_monitor_rounds_total{trigger="schedule"}`])
}
