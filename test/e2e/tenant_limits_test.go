package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/receiver"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

// Issue 16: one tenant limited by the receiver with a retryable answer
// (429) never holds back another tenant, and nothing of it is lost.

// tenantMetric sums kata-monitor's samples of family name for endpoint ep
// and tenant, over every other label unless more (name="value" pairs)
// narrows them.
func tenantMetric(v selfmetrics.Values, name, ep, tenant string, more ...string) float64 {
	want := append([]string{fmt.Sprintf("endpoint=%q", ep), fmt.Sprintf("tenant=%q", tenant)}, more...)
	s := 0.0
next:
	for k, val := range v {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		for _, l := range want {
			if !strings.Contains(k, l) {
				continue next
			}
		}
		s += val
	}
	return s
}

// receiverSum sums the samples of family name in a receiver's own
// /metrics whose labels include every one of labels (name="value");
// ok is false while none is exposed.
func receiverSum(t *testing.T, r *receiver.Receiver, name string, labels ...string) (sum float64, ok bool) {
	t.Helper()
	body, err := r.Get(context.Background(), "/metrics")
	require.NoError(t, err)
next:
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, "%q", line)
		sum, ok = sum+v, true
	}
	return sum, ok
}

// writeAtomically replaces path's content in one rename, so a receiver
// polling the file never reads half of it.
func writeAtomically(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(body), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// limitedTenant drives the phase where the receiver answers 429 to
// team-c only: limited reports when the receiver has started refusing
// team-c; then, until team-c's queue lag (age of its oldest unsent
// sample) reaches 10 s, the other tenants' lag must stay within 5 s
// (500 ms rounds: each of their rounds is delivered while team-c waits);
// raise lifts the limit, and team-c's backlog must then drain. It returns
// a summary for the test's result line.
func limitedTenant(t *testing.T, m *monitor, ep string, limited func(v selfmetrics.Values) (bool, string), raise func()) string {
	t.Helper()
	t0 := time.Now()
	waitFor(t, 120*time.Second, 500*time.Millisecond, func() (bool, string) {
		return limited(m.ownMetrics(t))
	})
	t1 := time.Now()
	const heldC, boundOthers = 10.0, 5.0
	lag := func(v selfmetrics.Values, tenant string) float64 {
		return tenantMetric(v, "kata_monitor_remote_write_queue_lag_seconds", ep, tenant)
	}
	others := []string{"team-a", "team-b", "kata-node"}
	maxOther, worst := 0.0, ""
	begin := m.ownMetrics(t)
	var end selfmetrics.Values
	waitFor(t, 90*time.Second, 250*time.Millisecond, func() (bool, string) {
		end = m.ownMetrics(t)
		for _, tn := range others {
			if l := lag(end, tn); l > maxOther {
				maxOther, worst = l, tn
			}
		}
		return lag(end, "team-c") >= heldC, fmt.Sprintf("team-c's lag %.1fs (waiting for %.0fs)", lag(end, "team-c"), heldC)
	})
	require.LessOrEqual(t, maxOther, boundOthers, "tenant %s was held back while team-c was limited", worst)
	sent := func(v selfmetrics.Values, tenant string) float64 {
		return tenantMetric(v, "kata_monitor_remote_write_samples_sent_total", ep, tenant)
	}
	r429 := func(v selfmetrics.Values, tenant string) float64 {
		return tenantMetric(v, "kata_monitor_remote_write_requests_total", ep, tenant, `code="429"`)
	}
	othersSent := 0.0
	for _, tn := range others {
		require.Greater(t, sent(end, tn), sent(begin, tn), "tenant %s delivered while team-c was limited", tn)
		require.Zero(t, r429(end, tn), "tenant %s answered 429", tn)
		othersSent += sent(end, tn) - sent(begin, tn)
	}
	summary := fmt.Sprintf("while team-c was answered 429 (%.0f answers so far) and held %.0fs, the other tenants' queue lag stayed <= %.1fs and they delivered %.0f samples",
		r429(end, "team-c"), heldC, maxOther, othersSent)
	t2 := time.Now()
	raise()
	waitFor(t, 120*time.Second, 500*time.Millisecond, func() (bool, string) {
		l := lag(m.ownMetrics(t), "team-c")
		return l < boundOthers, fmt.Sprintf("team-c's backlog after the limit was raised: lag %.1fs", l)
	})
	sec := func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
	return fmt.Sprintf("%s (limited after %s, held for %s, drained %s after the raise)", summary, sec(t1.Sub(t0)), sec(t2.Sub(t1)), sec(time.Since(t2)))
}

// metaMonitoring starts Debian's Prometheus as Thanos's meta-monitoring
// source: it scrapes every second the targets of a file_sd file, which
// the returned function sets (the receiver's address is known only once
// it runs, and Thanos needs this Prometheus's address in its limits).
func metaMonitoring(t *testing.T) (*receiver.Receiver, func(target string)) {
	t.Helper()
	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.json")
	require.NoError(t, os.WriteFile(targets, []byte("[]"), 0o644))
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: thanos-receive\n    file_sd_configs: [{files: [%q], refresh_interval: 1s}]\n", targets)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644))
	p, err := receiver.Start(ctxT(t), receiver.Prometheus, dir, nil)
	require.NoError(t, err)
	t.Cleanup(p.Stop)
	return p, func(target string) {
		writeAtomically(t, targets, fmt.Sprintf(`[{"targets": [%q]}]`, target))
	}
}

// TestTenantsThanos: 20 sandboxes in 3 namespaces into Thanos Receive
// with tenant per namespace (THANOS-TENANT), read back through Thanos
// Query with tenancy enforced, and team-c over its head series limit.
//
// The limit is the one Thanos gives a platform team per tenant:
// write.tenants.team-c.head_series_limit in receive's limits file (20,
// below team-c's 48 series). Thanos checks it on a router (receive runs as
// router and ingestor, scripts/run-receiver.sh) against a meta-monitoring
// Prometheus (here Debian's, scraping receive's prometheus_tsdb_head_series
// by tenant every second; receive asks it every 15 s), and once team-c is
// over it refuses each of team-c's whole requests with 429 "tenant is
// above active series limit" (Thanos v0.42.5 pkg/receive/handler.go). A
// 429 is retried (retry_on_http_429, default true), so nothing of team-c
// is dropped: its samples wait in its own queue while team-a, team-b and
// the default tenant deliver every round (their queue lag stays within
// 5 s while team-c's reaches 10 s). The operator then raises the limit
// (receive re-reads the file): team-c's backlog is delivered. Then, as
// for every tenant run: each tenant's query returns exactly its
// namespace's series (tenant_id=<tenant> on each), kata-monitor's own are
// in the default tenant only, every round of every tenant's counters is
// stored once and in order (team-c's refused rounds included), and
// appended = sent per tenant, nothing dropped.
func TestTenantsThanos(t *testing.T) {
	t.Parallel()
	const limit = 20
	meta, scrape := metaMonitoring(t)
	limits := func(n int) string {
		return fmt.Sprintf("write:\n  global:\n    meta_monitoring_url: %s\n  tenants:\n    team-c:\n      head_series_limit: %d\n", meta.BaseURL(), n)
	}
	thanos := startDistributed(t, receiver.Thanos, map[string]string{"limits.yaml": limits(limit)})
	scrape(strings.TrimPrefix(thanos.BaseURL(), "http://"))
	var summary string
	tenantsInto(t, thanos, 0, func(m *monitor) {
		summary = limitedTenant(t, m, "thanos", func(v selfmetrics.Values) (bool, string) {
			refused, _ := receiverSum(t, thanos, "thanos_receive_head_series_limited_requests_total", `tenant="team-c"`)
			got := tenantMetric(v, "kata_monitor_remote_write_requests_total", "thanos", "team-c", `code="429"`)
			return refused > 0 && got > 0, fmt.Sprintf("team-c: Thanos refused %.0f requests over its head series limit, kata-monitor saw %.0f 429 answers", refused, got)
		}, func() {
			writeAtomically(t, filepath.Join(thanos.Dir(), "limits.yaml"), limits(1000))
			waitFor(t, 60*time.Second, 250*time.Millisecond, func() (bool, string) {
				v, _ := receiverSum(t, thanos, "thanos_receive_head_series_limit", `tenant="team-c"`)
				return v == 1000, fmt.Sprintf("Thanos's team-c head series limit %.0f (raised to 1000)", v)
			})
		})
	})
	result(t, "Thanos head_series_limit %d for team-c: %s; after the limit was raised, team-c's backlog was delivered whole", limit, summary)
}

// TestTenantsMimir: 20 sandboxes in 3 namespaces into Mimir with tenant
// per namespace; team-c is over both per-tenant limits a platform team
// sets in Mimir's runtime configuration (overrides.team-c):
//
//   - max_global_series_per_user 20, below its 48 series: Mimir keeps the
//     first 20 and refuses samples of the others with 400
//     err-mimir-max-series-per-user, which kata-monitor drops and counts as
//     "limit" (after splitting: the kept series' samples are delivered);
//   - ingestion_rate 10 samples/s (burst 100), below its 96: Mimir answers
//     429 err-mimir-tenant-max-ingestion-rate with its own Retry-After
//     (6 to 9 s; kata-monitor waits at most 10 x max_backoff, 5 s here).
//     kata-monitor retries team-c's requests and holds its samples in
//     team-c's queue while team-a, team-b and the default tenant deliver
//     every round (their queue lag stays within 5 s while team-c's reaches
//     10 s); then the rate limit is raised (Mimir re-reads the file every
//     second here) and team-c's backlog is delivered.
//
// Each tenant's query API returns exactly its namespace's series (team-c:
// at most 20), kata-monitor's own are in the default tenant only, every
// round of every stored counter series is there once and in order (team-c's
// rounds answered 429 included), and per tenant appended = sent + dropped,
// dropped only as "limit" and only for team-c.
func TestTenantsMimir(t *testing.T) {
	t.Parallel()
	const limit = 20
	overrides := func(rate, burst int) string {
		return fmt.Sprintf("overrides:\n  team-c:\n    max_global_series_per_user: %d\n    ingestion_rate: %d\n    ingestion_burst_size: %d\n", limit, rate, burst)
	}
	mimir := startDistributed(t, receiver.Mimir, map[string]string{"runtime.yaml": overrides(10, 100)},
		"-distributor.ingestion-rate-limit=1000000", "-distributor.ingestion-burst-size=10000000", "-runtime-config.reload-period=1s")
	var summary string
	tenantsInto(t, mimir, limit, func(m *monitor) {
		summary = limitedTenant(t, m, "mimir", func(v selfmetrics.Values) (bool, string) {
			refused, _ := receiverSum(t, mimir, "cortex_discarded_samples_total", `reason="rate_limited"`, `user="team-c"`)
			got := tenantMetric(v, "kata_monitor_remote_write_requests_total", "mimir", "team-c", `code="429"`)
			return refused > 0 && got > 0, fmt.Sprintf("team-c: Mimir refused %.0f samples over its ingestion rate, kata-monitor saw %.0f 429 answers", refused, got)
		}, func() {
			writeAtomically(t, filepath.Join(mimir.Dir(), "runtime.yaml"), overrides(1000000, 10000000))
		})
	})
	result(t, "Mimir ingestion_rate 10/s and max_global_series_per_user %d for team-c: %s; after the rate limit was raised, team-c's backlog was delivered", limit, summary)
}
