package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/test/daemon"
	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
	"github.com/kata-containers/kata-monitor/test/faultproxy"
	"github.com/kata-containers/kata-monitor/test/receiver"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

// Issue 16: tenant per namespace into the distributed receivers (Mimir,
// Thanos Receive), per-tenant limits, and a backlog older than the
// receiver's window.

// tenantExposition is a small shim exposition (8 series per sandbox), so 20
// sandboxes stay light for a receiver on a loaded 2-core machine.
const tenantExposition = `# HELP kata_agent_scrape_count Agent scrapes.
# TYPE kata_agent_scrape_count counter
kata_agent_scrape_count 100
# HELP kata_hypervisor_threads Hypervisor threads.
# TYPE kata_hypervisor_threads gauge
kata_hypervisor_threads 5
# HELP kata_shim_netdev Network device statistics.
# TYPE kata_shim_netdev counter
kata_shim_netdev{interface="eth0",item="recv_bytes"} 1000
kata_shim_netdev{interface="eth0",item="sent_bytes"} 2000
kata_shim_netdev{interface="eth0",item="recv_packets"} 10
kata_shim_netdev{interface="eth0",item="sent_packets"} 20
# HELP kata_guest_load Guest load average.
# TYPE kata_guest_load gauge
kata_guest_load{item="load1"} 1
kata_guest_load{item="load5"} 2
`

const tenantSeriesPerSandbox = 8

var teams = []string{"team-a", "team-b", "team-c"}

// tenantNode is n sandboxes whose pods are in the namespaces teams[i%3].
func tenantNode(t *testing.T, n int) *fakenode.Node { return tenantNodeIn(t, n, teams) }

// tenantNodeIn is n sandboxes whose pods are in the namespaces ns[i%len(ns)].
func tenantNodeIn(t *testing.T, n int, ns []string) *fakenode.Node {
	t.Helper()
	node, err := fakenode.Start(sockets.Dir(t), n, fakeshim.Options{Exposition: []byte(tenantExposition)})
	require.NoError(t, err)
	t.Cleanup(node.Close)
	for i := range n {
		p := fakenode.PodFor(i)
		node.CRI.SetPod(fakenode.ID(i), cri.Pod{UID: p.UID, Name: p.Name, Namespace: ns[i%len(ns)]})
	}
	return node
}

// sandboxesIn counts the sandboxes of node in namespace ns.
func sandboxesIn(n int, ns string) int {
	c := 0
	for i := range n {
		if teams[i%3] == ns {
			c++
		}
	}
	return c
}

// startDistributed starts kind with files written into its directory first
// (e.g. Mimir's runtime.yaml) and extra flags.
func startDistributed(t *testing.T, kind receiver.Kind, files map[string]string, extra ...string) *receiver.Receiver {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	log := &daemon.Buffer{}
	r, err := receiver.StartArgs(ctxT(t), kind, dir, log, extra...)
	if err != nil {
		t.Fatalf("start %s: %v\n%s", kind, err, tail(log.String(), 40))
	}
	t.Cleanup(r.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", kind, tail(log.String(), 40))
		}
	})
	return r
}

// settled waits (120 s at most) until tenant's queue of endpoint ep has
// nothing pending and appended = sent + dropped for three reads in a row
// with appended unchanged, and returns those values.
func settled(t *testing.T, m *monitor, ep, tenant string) (appended, sent float64, dropped map[string]float64, pending float64) {
	t.Helper()
	stable, last := 0, -1.0
	waitFor(t, 120*time.Second, 500*time.Millisecond, func() (bool, string) {
		appended, sent, dropped, pending = tenantValues(m.ownMetrics(t), ep, tenant)
		if pending == 0 && appended == last && appended == sent+sum(dropped) {
			stable++
		} else {
			stable = 0
		}
		last = appended
		return stable >= 3, fmt.Sprintf("tenant %s: appended %.0f sent %.0f dropped %v pending %.0f", tenant, appended, sent, dropped, pending)
	})
	return appended, sent, dropped, pending
}

// tenantValues reads, per tenant, the queue counters of endpoint ep.
func tenantValues(v selfmetrics.Values, ep, tenant string) (appended, sent float64, dropped map[string]float64, pending float64) {
	dropped = map[string]float64{}
	reasonRe := regexp.MustCompile(`reason="([^"]*)"`)
	mine := func(k string) bool {
		return strings.Contains(k, fmt.Sprintf("endpoint=%q", ep)) && strings.Contains(k, fmt.Sprintf("tenant=%q", tenant))
	}
	for k, val := range v {
		if !mine(k) {
			continue
		}
		name, _, _ := strings.Cut(k, "{")
		switch name {
		case "kata_monitor_remote_write_samples_dropped_total", "kata_monitor_wal_dropped_samples_total":
			if m := reasonRe.FindStringSubmatch(k); m != nil && val > 0 {
				dropped[m[1]] += val
			}
		case "kata_monitor_remote_write_samples_appended_total":
			appended = val
		case "kata_monitor_remote_write_samples_sent_total":
			sent = val
		case "kata_monitor_wal_pending_samples":
			pending = val
		}
	}
	return appended, sent, dropped, pending
}

func sum(m map[string]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

// tenantsInto pushes 20 sandboxes in 3 namespaces into r with tenant per
// namespace and checks each tenant's series; limitC > 0 is team-c's series
// limit set in the receiver (0: no limit, nothing may be dropped). before,
// when not nil, runs once kata-monitor is pushing, before the checks.
func tenantsInto(t *testing.T, r *receiver.Receiver, limitC int, before func(m *monitor)) {
	const n = 20
	node := tenantNode(t, n)
	ep := string(r.Kind)
	tenantBlock := fmt.Sprintf("    tenant: {label: cri_namespace, default: kata-node, header: %s}\n", r.Kind.TenantHeader())
	// A proxy without faults keeps the books of what r acknowledged.
	p, err := faultproxy.New(r.WriteURL())
	require.NoError(t, err)
	p.RecordAcked(r.Kind.TenantHeader())
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	cfg := writeConfigWith(t, "", "500ms", t.TempDir(), "64MiB", endpoint{name: ep, url: srv.URL + "/write", extra: tenantBlock + noMetadata})
	start := time.Now()
	m := startMonitor(t, node, "--config", cfg)
	ctx := ctxT(t)
	if before != nil {
		before(m)
	}

	requireTenantsSeparated(ctx, t, r, n, limitC)
	// Stop the shims' series (own metrics keep flowing to the default
	// tenant), then the namespaces' tenants settle: appended = sent +
	// dropped exactly, nothing pending.
	for _, id := range node.IDs() {
		require.NoError(t, node.Remove(id))
	}
	summary := requireTenantsComplete(ctx, t, r, p, m, n, limitC, start)
	result(t, "20 sandboxes in 3 namespaces into %s, tenant per namespace: each tenant's query returns exactly its namespace's series, own metrics only in the default tenant; %s", r.Kind, strings.Join(summary, "; "))
}

// requireTenantsSeparated waits until every namespace's series are in its
// own tenant and only there (limitC: see tenantsInto), kata-monitor's own
// metrics in the default tenant alone.
func requireTenantsSeparated(ctx context.Context, t *testing.T, r *receiver.Receiver, n, limitC int) {
	// Every namespace's series arrive in its own tenant, and only there.
	var at time.Time
	for _, ns := range teams {
		want := sandboxesIn(n, ns) * tenantSeriesPerSandbox
		limited := ns == "team-c" && limitC > 0
		waitFor(t, 120*time.Second, time.Second, func() (bool, string) {
			at = time.Now()
			got, err := r.ForTenant(ns).Instant(ctx, `{__name__=~"kata_.+"}`, at)
			if err != nil {
				return false, err.Error()
			}
			other := 0
			for _, s := range got {
				if s["cri_namespace"] != ns {
					other++
				}
				// Thanos Receive labels each series with its tenant.
				if r.Kind == receiver.Thanos && s["tenant_id"] != ns {
					other++
				}
			}
			if limited { // Mimir keeps the first limitC series it sees
				return len(got) > 0 && len(got) <= limitC && other == 0, fmt.Sprintf("tenant %s: %d series (want 1..%d: its series limit), %d of another namespace", ns, len(got), limitC, other)
			}
			return len(got) == want && other == 0, fmt.Sprintf("tenant %s: %d series (want %d), %d of another namespace", ns, len(got), want, other)
		})
	}
	// The default tenant holds kata-monitor's own metrics and no shim series.
	waitFor(t, 60*time.Second, time.Second, func() (bool, string) {
		own, err := r.ForTenant("kata-node").Instant(ctx, `{__name__=~"kata_monitor_.+"}`, time.Now())
		if err != nil {
			return false, err.Error()
		}
		shims, err := r.ForTenant("kata-node").Instant(ctx, `{cri_namespace!=""}`, time.Now())
		if err != nil {
			return false, err.Error()
		}
		return len(own) > 10 && len(shims) == 0, fmt.Sprintf("default tenant: %d own series, %d shim series", len(own), len(shims))
	})
	// No tenant sees another's own metrics.
	for _, ns := range teams {
		got, err := r.ForTenant(ns).Instant(ctx, `{__name__=~"kata_monitor_.+"}`, time.Now())
		require.NoError(t, err)
		require.Empty(t, got, "tenant %s", ns)
	}
}

// requireTenantsComplete checks, once the shims are gone, that every
// tenant stored every round of its counter series in order and settled
// (appended = sent + dropped, drops only for team-c's limit), that its
// books are exact against r (storedBooks: what p saw r acknowledge), and
// returns a line per tenant for the result.
func requireTenantsComplete(ctx context.Context, t *testing.T, r *receiver.Receiver, p *faultproxy.Proxy, m *monitor, n, limitC int, start time.Time) []string {
	ep := string(r.Kind)
	// Every round of every counter series a tenant stored is there, once,
	// in order (the fake shims add 1 per scrape to a counter): all 5 per
	// sandbox of a tenant without a limit (kata_agent_scrape_count, 4
	// kata_shim_netdev), those Mimir kept for team-c over its series limit
	// (at least 2 of its 20: only 18 of team-c's series are gauges).
	unpushed := m.account(t, ep).unpushed
	for _, ns := range teams {
		got, err := r.ForTenant(ns).Export(ctx, `{__name__=~"kata_agent_scrape_count|kata_shim_netdev"}`, start, time.Now())
		require.NoError(t, err)
		if ns == "team-c" && limitC > 0 {
			require.GreaterOrEqual(t, len(got), 2, "tenant %s: counter series kept under its series limit", ns)
		} else {
			require.Len(t, got, 5*sandboxesIn(n, ns), "tenant %s: counter series", ns)
		}
		for _, s := range got {
			require.GreaterOrEqual(t, len(s.Values), 4, "tenant %s: %v", ns, s.Labels)
			deliveredInOrder(t, s, unpushed)
		}
	}
	summary := []string{}
	for _, ns := range teams {
		app, sent, dropped, _ := settled(t, m, ep, ns)
		require.Positive(t, app)
		if ns == "team-c" && limitC > 0 {
			require.Positive(t, dropped["limit"], "team-c's excess counted under reason limit: %v", dropped)
			require.Equal(t, []string{"limit"}, slices.Sorted(mapsKeys(dropped)), "no other reason")
		} else {
			require.Empty(t, dropped, "tenant %s loses nothing", ns)
		}
		kept := requireStoredAsAcked(t, r, p, ns, sent, start)
		if limitC == 0 || ns != "team-c" {
			require.Zero(t, kept, "tenant %s: nothing refused, nothing kept", ns)
		}
		stored := fmt.Sprintf("each stored, %d staleness markers included", markers(p.Acked(ns)))
		if r.Kind == receiver.Thanos {
			stored = fmt.Sprintf("each but its %d staleness markers read back: Thanos Query leaves them out", markers(p.Acked(ns)))
		}
		summary = append(summary, fmt.Sprintf("%s appended %.0f sent %.0f (%s) dropped %v (%d of them kept by %s)", ns, app, sent, stored, dropped, kept, r.Kind))
	}
	return summary
}

func mapsKeys(m map[string]float64) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestTenantsMimirOutageBeyondWindow: Mimir takes samples at most 20s old
// (-validation.past-grace-period, a short stand-in for a receiver's
// out-of-order window); for 35s kata-monitor gets no answer from it: the
// first 5s because each connection is cut after Mimir stored the request
// (so Mimir holds a round that kata-monitor, resending it past the window,
// counts as too_old), then because Mimir is unreachable; then it is back.
// The part of the backlog older than the window is refused
// (err-mimir-too-far-in-past) and counted as too_old; the rest arrives in
// order; per tenant, sent + dropped = appended, and the books are exact
// against Mimir (storedBooks): sent is what Mimir acknowledged, each
// acknowledged sample is stored (read by remote read, staleness markers
// included), and nothing else but samples of requests Mimir refused or
// whose answer was lost.
func TestTenantsMimirOutageBeyondWindow(t *testing.T) {
	t.Parallel()
	const window, outage, lostAnswers = 20 * time.Second, 35 * time.Second, 5 * time.Second
	mimir := startDistributed(t, receiver.Mimir, nil,
		"-distributor.ingestion-rate-limit=1000000", "-distributor.ingestion-burst-size=10000000",
		fmt.Sprintf("-validation.past-grace-period=%s", window))
	p, err := faultproxy.New(mimir.WriteURL())
	require.NoError(t, err)
	p.RecordAcked(receiver.Mimir.TenantHeader())
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	url := srv.URL + "/api/v1/push"
	const n = 3
	node := tenantNode(t, n)
	start := time.Now()
	cfg := writeConfig(t, "500ms", t.TempDir(), "64MiB", endpoint{name: "mimir", url: url,
		extra: "    tenant: {label: cri_namespace}\n" + noMetadata})
	m := startMonitor(t, node, "--config", cfg)

	waitFor(t, 60*time.Second, 500*time.Millisecond, func() (bool, string) {
		_, sent, _, _ := tenantValues(m.ownMetrics(t), "mimir", "team-a")
		return sent > 0, "nothing sent to team-a yet"
	})
	// The outage starts with lost answers (Mimir stores each request, the
	// connection is cut before its answer), then Mimir is unreachable.
	p.SetFaults(func(int64, *prompb.WriteRequest) faultproxy.Fault { return faultproxy.Fault{LoseAnswer: true} })
	outageStart := time.Now()
	waitFor(t, 2*outage, 500*time.Millisecond, func() (bool, string) {
		return time.Since(outageStart) >= lostAnswers, "answers lost"
	})
	down(p)
	waitFor(t, 2*outage, time.Second, func() (bool, string) {
		return time.Since(outageStart) >= outage, "outage"
	})
	p.SetFaults(nil)

	for _, id := range node.IDs() {
		require.NoError(t, node.Remove(id))
	}
	var summary []string
	for _, ns := range teams {
		app, sent, dropped, _ := settled(t, m, "mimir", ns)
		require.Positive(t, dropped["too_old"], "tenant %s: the backlog older than the window is dropped as too_old: %v", ns, dropped)
		require.Equal(t, []string{"too_old"}, slices.Sorted(mapsKeys(dropped)), "tenant %s: no other reason", ns)
		require.Positive(t, sent)
		// Exactly what was counted as sent is stored, staleness markers
		// included (a failed scrape's are invisible to a query), and
		// nothing else but what Mimir kept of requests it refused.
		kept := requireStoredAsAcked(t, mimir, p, ns, sent, start)
		require.LessOrEqual(t, float64(kept), dropped["too_old"], "tenant %s: kept by Mimir, counted as too_old", ns)
		summary = append(summary, fmt.Sprintf("%s appended %.0f = sent %.0f (each stored, %d staleness markers included) + dropped(too_old) %.0f (%d of them stored before their answers were lost)", ns, app, sent, markers(p.Acked(ns)), dropped["too_old"], kept))
	}
	// What arrived is in order and has no duplicates: Mimir refuses
	// out-of-order samples itself, so each stored counter only grows.
	got, err := mimir.ForTenant("team-a").Export(ctxT(t), `kata_agent_scrape_count`, time.Now().Add(-5*time.Minute), time.Now())
	require.NoError(t, err)
	require.NotEmpty(t, got)
	for _, s := range got {
		for i := 1; i < len(s.Timestamps); i++ {
			require.Greater(t, s.Timestamps[i], s.Timestamps[i-1])
		}
	}
	result(t, "Mimir with a %s window (-validation.past-grace-period), no answer for %s (the first %s answers lost after Mimir stored the request, then unreachable): %s", window, outage, lostAnswers, strings.Join(summary, "; "))
}
