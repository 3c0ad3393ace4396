package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/receiver"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

// endpoint is one remote_write entry for writeConfig.
type endpoint struct {
	name, url string
	extra     string // more YAML lines, indented 4 spaces
}

// writeConfig writes a push config with push_self_metrics off: the push
// tests count what the shims served, and their quiesce/pause helpers wait
// for a node whose counters stop moving once its shims are gone or
// failing, which a node pushing its own metrics every round never is.
// writeConfigWith(t, "", ...) keeps the default (self-metrics pushed).
func writeConfig(t *testing.T, interval string, walDir string, maxSize string, eps ...endpoint) string {
	t.Helper()
	return writeConfigWith(t, "  push_self_metrics: false\n", interval, walDir, maxSize, eps...)
}

// writeConfigWith is writeConfig with global adding lines (indented 2
// spaces) to the global section.
func writeConfigWith(t *testing.T, global, interval string, walDir string, maxSize string, eps ...endpoint) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  external_labels: {node: e2e-node}\n%s", interval, interval, global)
	fmt.Fprintf(&b, "wal:\n  dir: %s\n  max_size: %s\nremote_write:\n", walDir, maxSize)
	for _, e := range eps {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n    queue_config: {min_backoff: 50ms, max_backoff: 500ms}\n%s", e.name, e.url, e.extra)
	}
	p := filepath.Join(t.TempDir(), "kata-monitor.yaml")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o644))
	return p
}

// ownMetrics reads kata-monitor's own samples from /metrics/self, which
// never starts a round. Push tests read their counters with it: a pull
// round (the first pull after start runs one) is a scrape that pushes
// nothing, a hole in a fake shim's counter.
func (m *monitor) ownMetrics(t *testing.T) selfmetrics.Values {
	t.Helper()
	v, err := selfmetrics.Fetch("http://" + m.addr + "/metrics/self")
	require.NoError(t, err)
	return v
}

// selfMetrics reads kata-monitor's own samples from /metrics, as a
// scraper does: in pull mode that runs the rounds.
func (m *monitor) selfMetrics(t *testing.T) selfmetrics.Values {
	t.Helper()
	v, err := selfmetrics.Fetch("http://" + m.addr + "/metrics")
	require.NoError(t, err)
	return v
}

// deliveredInOrder asserts a counter series of a fake shim (which adds 1
// per scrape) arrived in order, never repeated, with no hole but those a
// scrape that pushed nothing explains: a scrape that failed (a timeout on
// a loaded machine) or served a pull round advances the shim's counter
// without a pushed sample. unpushed is account.unpushed, read after the
// series was exported.
func deliveredInOrder(t *testing.T, s receiver.Series, unpushed float64) {
	t.Helper()
	g := gaps(t, s)
	require.LessOrEqual(t, missing(g), unpushed, "%v: holes %v beyond the scrapes that pushed nothing", s.Labels, g)
}

const counterFamily = "kata_shim_agent_rpc_durations_histogram_milliseconds_count"

// TestPushIntoBothReceivers: 20 sandboxes pushed into VictoriaMetrics and
// Prometheus at once; every series of every sandbox arrives with its labels
// and the counter values are what the shims served, round by round.
func TestPushIntoBothReceivers(t *testing.T) {
	t.Parallel()
	node := startNode(t, 20)
	ctx := ctxT(t)
	vm := startReceiver(t, receiver.VictoriaMetrics)
	prom := startReceiver(t, receiver.Prometheus)

	start := time.Now()
	cfg := writeConfig(t, "1s", t.TempDir(), "64MiB", endpoint{name: "vm", url: vm.WriteURL()}, endpoint{name: "prom", url: prom.WriteURL()})
	m := startMonitor(t, node, "--config", cfg)

	perSandbox := seriesPerSandbox(t)
	for _, r := range []*receiver.Receiver{vm, prom} {
		t.Run(string(r.Kind), func(t *testing.T) {
			got := labelledSeries(ctx, t, r, start, 20*perSandbox)
			checkLabelled(t, got, m.account(t, "vm").unpushed, 20, nil)
		})
	}
	self := m.ownMetrics(t)
	require.Zero(t, self["kata_monitor_remote_write_samples_dropped_total"])
}

// labelledSeries waits (90 s at most) until r holds want series of kata_*
// families with pod labels since start, each with 4 samples or more, and
// returns them. Series seen before the CRI knew a pod carry no cri_*
// labels and were ended with a staleness marker: they are not counted.
func labelledSeries(ctx context.Context, t *testing.T, r *receiver.Receiver, start time.Time, want int) []receiver.Series {
	t.Helper()
	var got []receiver.Series
	waitFor(t, 90*time.Second, time.Second, func() (bool, string) {
		all, err := r.Export(ctx, `{__name__=~"kata_.+",sandbox_id!="",cri_name!=""}`, start, time.Now())
		if err != nil {
			return false, err.Error()
		}
		got = all
		short := 0
		for _, s := range all {
			if len(s.Values) < 4 {
				short++
			}
		}
		return len(got) == want && short == 0, fmt.Sprintf("%d labelled series (want %d), %d with < 4 samples", len(got), want, short)
	})
	return got
}

// checkLabelled asserts that every series of got carries the external
// label node="e2e-node" and the cri_* labels of its sandbox's pod, that the
// counter family arrived in order (deliveredInOrder, unpushed as there),
// and that got covers sandboxes sandboxes; each, when not nil, checks
// every series further.
func checkLabelled(t *testing.T, got []receiver.Series, unpushed float64, sandboxes int, each func(receiver.Series)) {
	t.Helper()
	bySandbox := map[string]int{}
	for _, s := range got {
		require.Equal(t, "e2e-node", s.Labels["node"], "external label")
		id := s.Labels["sandbox_id"]
		bySandbox[id]++
		i := indexOf(id)
		require.GreaterOrEqual(t, i, 0, "unknown sandbox %s", id)
		pod := fakenode.PodFor(i)
		require.Equal(t, pod.Name, s.Labels["cri_name"])
		require.Equal(t, pod.Namespace, s.Labels["cri_namespace"])
		require.Equal(t, pod.UID, s.Labels["cri_uid"])
		if each != nil {
			each(s)
		}
		if s.Labels["__name__"] == counterFamily {
			deliveredInOrder(t, s, unpushed)
		}
	}
	require.Len(t, bySandbox, sandboxes)
}

// indexOf is the fake node's index of sandbox id, -1 when none of the
// first 1000 has it.
func indexOf(id string) int {
	for i := 0; i < 1000; i++ {
		if fakenode.ID(i) == id {
			return i
		}
	}
	return -1
}

// seriesPerSandbox counts the kata_* series one shim serves once renamed
// (go_* and process_* become kata_shim_go_* / kata_shim_process_*): all 759.
func seriesPerSandbox(t *testing.T) int {
	raw, err := os.ReadFile("../testdata/kata-shim-metrics.prom")
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if line != "" && line[0] != '#' {
			n++
		}
	}
	return n
}

// TestOutageAndKill: the receiver is down for a while and kata-monitor is
// SIGKILLed during the outage; after restart every round of the gap arrives
// in order (Prometheus rejects out-of-order samples, so its acceptance proves
// the order) and nothing is dropped.
func TestOutageAndKill(t *testing.T) {
	t.Parallel()
	node := startNode(t, 3)
	ctx := ctxT(t)
	prom := startReceiver(t, receiver.Prometheus)
	start := time.Now()
	walDir := t.TempDir()
	cfg := writeConfig(t, "500ms", walDir, "64MiB", endpoint{name: "prom", url: prom.WriteURL()})
	m := startMonitor(t, node, "--config", cfg)

	id := node.IDs()[0]
	// A counter with one series per sandbox: the shim serves 226+n on scrape n.
	sel := fmt.Sprintf(`kata_agent_scrape_count{sandbox_id=%q}`, id)
	require.Eventually(t, func() bool {
		got, err := prom.Export(ctx, sel, start, time.Now())
		return err == nil && len(got) == 1 && len(got[0].Values) >= 3
	}, 60*time.Second, 250*time.Millisecond)

	prom.Stop()
	scrapesAtStop := node.Shim(id).Scrapes()
	// Rounds pile up in the WAL while the receiver is down.
	require.Eventually(t, func() bool { return node.Shim(id).Scrapes() >= scrapesAtStop+20 }, 60*time.Second, 100*time.Millisecond)
	// The killed process's counters go with it: its failed scrapes are read
	// just before the kill (a scrape failing after the read belongs to the
	// round the kill interrupts, the restart's gap).
	unpushed := m.account(t, "prom").unpushed
	require.NotEqual(t, 0, m.stop(syscall.SIGKILL))
	m.start()
	require.Eventually(t, func() bool { return node.Shim(id).Scrapes() >= scrapesAtStop+30 }, 60*time.Second, 100*time.Millisecond)
	require.NoError(t, prom.Start(ctx))

	var got []receiver.Series
	waitFor(t, 90*time.Second, 500*time.Millisecond, func() (bool, string) {
		var err error
		got, err = prom.Export(ctx, sel, start, time.Now())
		if err != nil || len(got) != 1 {
			return false, fmt.Sprintf("err=%v series=%d", err, len(got))
		}
		return len(got[0].Values) >= 40, fmt.Sprintf("%d samples", len(got[0].Values))
	})
	s := got[0]
	unpushed += m.account(t, "prom").unpushed
	// Only the round the kill interrupted is missing: values step by 1
	// except one gap between the kill and the restart, and one more for
	// each scrape that pushed nothing (a timeout on a loaded host).
	gaps := 0
	for i := 1; i < len(s.Values); i++ {
		require.Greater(t, s.Timestamps[i], s.Timestamps[i-1])
		if d := s.Values[i] - s.Values[i-1]; d != 1 {
			require.False(t, math.IsNaN(d))
			require.Greater(t, d, 1.0, "a value repeated or went back")
			gaps++
		}
	}
	require.LessOrEqual(t, float64(gaps), 1+unpushed, "only the restart (and %.0f scrapes that pushed nothing) may leave a gap: %v", unpushed, s.Values)
	self := m.ownMetrics(t)
	require.Zero(t, self["kata_monitor_remote_write_samples_dropped_total"])
}

// TestStaleness: a removed sandbox's series end in Prometheus right after.
func TestStaleness(t *testing.T) {
	t.Parallel()
	node := startNode(t, 3)
	ctx := ctxT(t)
	prom := startReceiver(t, receiver.Prometheus)
	cfg := writeConfig(t, "500ms", t.TempDir(), "64MiB", endpoint{name: "prom", url: prom.WriteURL()})
	startMonitor(t, node, "--config", cfg)
	gone := node.IDs()[1]
	q := fmt.Sprintf(`kata_hypervisor_threads{sandbox_id=%q}`, gone)
	require.Eventually(t, func() bool {
		got, err := prom.Instant(ctx, q, time.Now())
		return err == nil && len(got) == 1
	}, 60*time.Second, 250*time.Millisecond)
	require.NoError(t, node.Remove(gone))
	removed := time.Now()
	require.Eventually(t, func() bool {
		got, err := prom.Instant(ctx, q, time.Now())
		return err == nil && len(got) == 0
	}, 30*time.Second, 250*time.Millisecond, "staleness marker never arrived")
	// Without the marker Prometheus would keep returning it for 5 minutes.
	require.Less(t, time.Since(removed), 4*time.Minute)
	// The other sandboxes are unaffected: both are there at a round's end
	// (a scrape that times out on a loaded host marks its sandbox's series
	// stale until the next round, as Prometheus does).
	require.Eventually(t, func() bool {
		got, err := prom.Instant(ctx, `kata_hypervisor_threads`, time.Now())
		return err == nil && len(got) == 2
	}, 30*time.Second, 250*time.Millisecond, "the other two sandboxes' series")
}
