package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/receiver"
)

func parseText(t *testing.T, body string) map[string]int {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	out := map[string]int{}
	for name, f := range fams {
		out[name] = len(f.GetMetric())
	}
	return out
}

// TestPullDropIn drives every upstream endpoint of the real binary on 20 fake
// sandboxes, as an operator replacing upstream kata-monitor would.
// Long for its table of the upstream endpoints.
func TestPullDropIn(t *testing.T) {
	node := startNode(t, 20)
	m := startMonitor(t, node)
	ids := node.IDs()
	id := ids[3]

	// The CRI labels fill in once the pod is known.
	var body string
	require.Eventually(t, func() bool {
		var code int
		code, body = m.get("/metrics", nil)
		return code == 200 && strings.Count(body, `cri_name="pod-`) >= 20*759
	}, 30*time.Second, 200*time.Millisecond, "cri labels never appeared")
	fams := parseText(t, body)
	require.Equal(t, 20, fams["kata_hypervisor_threads"])
	require.Equal(t, 20, fams["kata_shim_go_goroutines"], "go_* renamed kata_shim_go_*")
	require.NotContains(t, fams, "go_goroutines")
	require.Contains(t, fams, "kata_monitor_running_shim_count")
	require.Contains(t, fams, "kata_monitor_scrape_count")
	require.Contains(t, fams, "kata_monitor_go_goroutines")
	if os.Getenv("GOGC") == "" {
		require.Contains(t, body, "\nkata_monitor_go_gc_gogc_percent 50\n", "the daemon's GC default")
	}
	require.Equal(t, 1, strings.Count(body, "# TYPE kata_hypervisor_threads "), "one TYPE per family")
	require.Contains(t, body, fmt.Sprintf(`sandbox_id="%s"`, id))

	tests := []struct {
		name     string
		path     string
		hdr      http.Header
		code     int
		contains []string
		absent   []string
	}{
		{name: "filter one prefix", path: "/metrics?filter_family=kata_hypervisor", code: 200,
			contains: []string{"kata_hypervisor_threads{"}, absent: []string{"kata_guest_", "kata_monitor_", "kata_shim_go_"}},
		{name: "filter two prefixes", path: "/metrics?filter_family=kata_guest_load,kata_shim_go", code: 200,
			contains: []string{"kata_guest_load{", "kata_shim_go_goroutines{"}, absent: []string{"kata_hypervisor_", "kata_monitor_"}},
		{name: "one sandbox unchanged", path: "/metrics?sandbox=" + id, code: 200,
			contains: []string{"go_goroutines ", "kata_hypervisor_threads "}, absent: []string{`sandbox_id="`, "kata_shim_go_"}},
		{name: "sandboxes text", path: "/sandboxes", code: 200, contains: ids},
		{name: "sandboxes html", path: "/sandboxes", hdr: http.Header{"Accept": {"text/html"}}, code: 200,
			contains: []string{"<html", "/agent-url?sandbox=" + id, "pod-0003"}},
		{name: "agent url", path: "/agent-url?sandbox=" + id, code: 200, contains: []string{"vsock://"}},
		{name: "debug vars", path: "/debug/vars?sandbox=" + id, code: 200, contains: []string{"cmdline"}},
		{name: "pprof index", path: "/debug/pprof/?sandbox=" + id, code: 200},
		{name: "pprof cmdline", path: "/debug/pprof/cmdline?sandbox=" + id, code: 200},
		{name: "missing sandbox", path: "/agent-url", code: 400},
		{name: "unknown sandbox", path: "/agent-url?sandbox=" + strings.Repeat("a", 64), code: 404},
		{name: "traversal", path: "/agent-url?sandbox=../../etc", code: 400},
		{name: "encoded traversal", path: "/debug/vars?sandbox=%2e%2e%2f%2e%2e", code: 400},
		{name: "nul", path: "/metrics?sandbox=%00", code: 400},
		{name: "10KB id", path: "/agent-url?sandbox=" + strings.Repeat("x", 10<<10), code: 0},
		{name: "healthz", path: "/healthz", code: 200},
		{name: "readyz", path: "/readyz", code: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := m.get(tc.path, tc.hdr)
			if tc.code == 0 {
				require.True(t, code == 400 || code == 414 || code == 431, "code %d", code)
				return
			}
			require.Equal(t, tc.code, code, "%.500s", body)
			for _, s := range tc.contains {
				require.True(t, strings.Contains(body, s), "%q missing from %.500s", s, body)
			}
			for _, s := range tc.absent {
				require.False(t, strings.Contains(body, s), "%q present in %.500s", s, body)
			}
		})
	}
	// No request above touched a path outside the sandbox root.
	_, err := os.Stat(filepath.Join(node.Root, "..", "..", "etc"))
	require.True(t, os.IsNotExist(err))
}

// TestPullDiscovery: sandboxes created and removed while running show up and go.
func TestPullDiscovery(t *testing.T) {
	node := startNode(t, 2)
	m := startMonitor(t, node)
	newID, err := node.Add()
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, body := m.get("/sandboxes", nil)
		return strings.Contains(body, newID)
	}, 20*time.Second, 50*time.Millisecond)
	gone := node.IDs()[0]
	if gone == newID {
		gone = node.IDs()[1]
	}
	require.NoError(t, node.Remove(gone))
	require.Eventually(t, func() bool {
		_, body := m.get("/sandboxes", nil)
		return !strings.Contains(body, gone)
	}, 20*time.Second, 50*time.Millisecond)
	code, _ := m.get("/agent-url?sandbox="+gone, nil)
	require.Equal(t, 404, code)
}

// TestPrometheusScrapesPull has the real Prometheus server scrape the daemon
// and finds the series with their cri_* labels through its HTTP API.
// startScraper starts a Prometheus of kind that scrapes kata-monitor's
// /metrics at addr every second (job "kata"), stopped when the test ends.
func startScraper(t *testing.T, kind receiver.Kind, addr string) *receiver.Receiver {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: kata\n    static_configs:\n      - targets: ['%s']\n", addr)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644))
	prom, err := receiver.Start(ctxT(t), kind, dir, nil)
	require.NoError(t, err)
	t.Cleanup(prom.Stop)
	return prom
}

func TestPrometheusScrapesPull(t *testing.T) {
	node := startNode(t, 5)
	m := startMonitor(t, node)
	prom := startScraper(t, receiver.Prometheus, m.addr)

	var got []map[string]string
	var err error
	require.Eventually(t, func() bool {
		got, err = prom.Instant(ctxT(t), `kata_hypervisor_threads{cri_name!=""}`, time.Now())
		return err == nil && len(got) == 5
	}, 60*time.Second, 250*time.Millisecond, "err=%v got=%v", err, got)
	var names []string
	for _, l := range got {
		require.Len(t, l["sandbox_id"], 64)
		require.NotEmpty(t, l["cri_uid"])
		require.Regexp(t, `^ns-\d$`, l["cri_namespace"])
		names = append(names, l["cri_name"])
	}
	sort.Strings(names)
	want := []string{}
	for i := 0; i < 5; i++ {
		want = append(want, fakenode.PodFor(i).Name)
	}
	require.Equal(t, want, names)
}
