package deploy

import (
	"bufio"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/dashboard"
)

// selfMetric is one of kata-monitor's own families a dashboard may use, as
// registered: Namespace "kata_monitor", Subsystem, Name.
type selfMetric struct {
	subsystem, name string
	typ             string // counter, gauge or histogram
	// evidence, when set, replaces the default proof of existence: strings
	// that must all occur in one non-test Go file.
	evidence []string
}

func (m selfMetric) family() string {
	if m.subsystem == "" {
		return "kata_monitor_" + m.name
	}
	return "kata_monitor_" + m.subsystem + "_" + m.name
}

// runtimeEvidence proves the kata_monitor_process_* families: the Go and
// process collectors registered through a "kata_monitor_" prefix, as
// upstream kata-monitor exposes them.
var runtimeEvidence = []string{`WrapRegistererWithPrefix("kata_monitor_"`, "NewProcessCollector("}

// selfMetrics lists the kata-monitor families the dashboards may query.
// TestSelfMetricsExist keeps it honest against the Go sources.
var selfMetrics = []selfMetric{
	{name: "running_shim_count", typ: "gauge"},
	{name: "scrape_count", typ: "counter"},
	{name: "scrape_failed_count", typ: "counter"},
	{name: "scrape_durations_histogram_milliseconds", typ: "histogram"},
	{name: "sandboxes", typ: "gauge"},
	{subsystem: "remote_write", name: "samples_sent_total", typ: "counter"},
	{subsystem: "remote_write", name: "samples_dropped_total", typ: "counter"},
	{subsystem: "forwarder", name: "samples_dropped_total", typ: "counter"},
	{subsystem: "remote_write", name: "samples_failed_total", typ: "counter"},
	{subsystem: "remote_write", name: "queue_lag_seconds", typ: "gauge"},
	{subsystem: "remote_write", name: "last_send_success_timestamp_seconds", typ: "gauge"},
	{subsystem: "remote_write", name: "send_duration_seconds", typ: "histogram"},
	{subsystem: "wal", name: "bytes", typ: "gauge"},
	{subsystem: "wal", name: "dropped_samples_total", typ: "counter"},
	{subsystem: "process", name: "cpu_seconds_total", typ: "counter", evidence: runtimeEvidence},
	{subsystem: "process", name: "resident_memory_bytes", typ: "gauge", evidence: runtimeEvidence},
}

// goSources returns the contents of every non-test Go file of the
// repository that can register metrics: test/ (fakes, demo) and testdata
// are left out, so a name quoted there proves nothing.
func goSources(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "vendor":
				return filepath.SkipDir
			}
			if filepath.Clean(p) == filepath.Join(repoRoot, "test") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[p] = string(data)
		return nil
	})
	require.NoError(t, err)
	return files
}

func TestSelfMetricsExist(t *testing.T) {
	sources := goSources(t)
	for _, m := range selfMetrics {
		t.Run(m.family(), func(t *testing.T) {
			evidence := m.evidence
			full := `"` + m.family() + `"`
			if evidence == nil {
				evidence = []string{`"kata_monitor"`, `"` + m.name + `"`}
				if m.subsystem != "" {
					evidence = append(evidence, `"`+m.subsystem+`"`)
				}
			}
			for _, src := range sources {
				if strings.Contains(src, full) || containsAll(src, evidence) {
					return
				}
			}
			t.Fatalf("no non-test Go file registers %s (looked for %s or all of %q)", m.family(), full, evidence)
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// knownSeriesNames returns every series name the project exposes: the shim
// families of the test exposition (go_* and process_* renamed as
// kata-monitor does), kata-monitor's own, with the _bucket/_sum/_count
// series of histograms and summaries.
func knownSeriesNames(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "test", "testdata", "kata-shim-metrics.prom"))
	require.NoError(t, err)
	defer f.Close()
	known := map[string]bool{}
	add := func(name, typ string) {
		switch typ {
		case "histogram":
			known[name+"_bucket"], known[name+"_sum"], known[name+"_count"] = true, true, true
		case "summary":
			known[name], known[name+"_sum"], known[name+"_count"] = true, true, true
		default:
			known[name] = true
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 || fields[0] != "#" || fields[1] != "TYPE" {
			continue
		}
		name := fields[2]
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			name = "kata_shim_" + name
		}
		add(name, fields[3])
	}
	require.NoError(t, sc.Err())
	require.Greater(t, len(known), 50, "the test exposition lost its families")
	for _, m := range selfMetrics {
		add(m.family(), m.typ)
	}
	return known
}

// shimLabelValues maps family -> label -> values seen in the test
// exposition, so label matchers in the dashboards (item="vmrss") can be
// checked as well as names.
func shimLabelValues(t *testing.T) map[string]map[string]map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "test", "testdata", "kata-shim-metrics.prom"))
	require.NoError(t, err)
	out := map[string]map[string]map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if out[name] == nil {
			out[name] = map[string]map[string]bool{}
		}
		for _, m := range labelPair.FindAllStringSubmatch(rest, -1) {
			if out[name][m[1]] == nil {
				out[name][m[1]] = map[string]bool{}
			}
			out[name][m[1]][m[2]] = true
		}
	}
	return out
}

var (
	labelPair = regexp.MustCompile(`([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"`)
	// selector is a metric name with its matchers; matcher one label matcher.
	selector = regexp.MustCompile(`([a-zA-Z_:][\w:]*)\{([^}]*)\}`)
	matcher  = regexp.MustCompile(`([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	literals = regexp.MustCompile(`^[\w.-]+(\|[\w.-]+)*$`)
)

// checkMatcherValues reports label values a dashboard matches on that the
// shim never exposes for that family: a typo there silently empties a panel.
// Only literal values (or alternations of literals) are checked.
func checkMatcherValues(expr string, values map[string]map[string]map[string]bool) []string {
	var bad []string
	for _, sel := range selector.FindAllStringSubmatch(expr, -1) {
		labels, ok := values[sel[1]]
		if !ok {
			continue // not a shim family
		}
		for _, m := range matcher.FindAllStringSubmatch(sel[2], -1) {
			seen, ok := labels[m[1]]
			if !ok || !literals.MatchString(m[3]) {
				continue // a label the forwarder adds (node, cri_*), or a real regex
			}
			for _, v := range strings.Split(m[3], "|") {
				if !seen[v] {
					bad = append(bad, sel[1]+`{`+m[1]+`="`+v+`"}`)
				}
			}
		}
	}
	return bad
}

func TestCheckMatcherValues(t *testing.T) {
	values := map[string]map[string]map[string]bool{"m": {"item": {"a": true, "b": true}}}
	tests := []struct {
		expr string
		want []string
	}{
		{`rate(m{item="a", node=~"$node"}[5m])`, nil},
		{`m{item=~"a|b"}`, nil},
		{`m{item!~"a|c"}`, []string{`m{item="c"}`}},
		{`m{item="typo"} + other{item="x"}`, []string{`m{item="typo"}`}},
		{`m{item=~"a.*"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			require.Equal(t, tc.want, checkMatcherValues(tc.expr, values))
		})
	}
}

// The dashboard model is shared with the end-to-end test that runs every
// query against a receiver.
type (
	grafanaDashboard = dashboard.Dashboard
	grafanaPanel     = dashboard.Panel
)

func queryText(raw json.RawMessage) string { return dashboard.QueryText(raw) }

// TestDashboards: each shipped Grafana dashboard queries only series
// kata-monitor serves, through the datasource variable, with the variables
// it needs and the families it exists to show. Long for its table of two
// dashboards, each checked variable by variable and panel by panel.
func TestDashboards(t *testing.T) {
	known := knownSeriesNames(t)
	values := shimLabelValues(t)
	for _, n := range []string{"kata_guest_cpu_time_bucket", "go_goroutines", "kata_monitor_scrape_counts"} {
		require.False(t, known[n], "%s must not count as a known series", n)
	}
	tests := []struct {
		file string
		vars []string
		// mustUse are the families the dashboard exists to show.
		mustUse []string
	}{
		{file: "kata-monitor-health.json", vars: []string{"datasource", "node"}, mustUse: []string{
			"kata_monitor_running_shim_count", "kata_monitor_scrape_count", "kata_monitor_scrape_failed_count",
			"kata_monitor_scrape_durations_histogram_milliseconds_bucket",
			"kata_monitor_remote_write_samples_sent_total", "kata_monitor_remote_write_samples_dropped_total",
			"kata_monitor_remote_write_queue_lag_seconds", "kata_monitor_wal_bytes",
			"kata_monitor_remote_write_last_send_success_timestamp_seconds",
		}},
		{file: "kata-workloads.json", vars: []string{"datasource", "node", "namespace", "pod"}, mustUse: []string{
			"kata_hypervisor_proc_stat", "kata_guest_cpu_time", "kata_guest_meminfo", "kata_hypervisor_proc_status",
			"kata_guest_netdev_stat", "kata_hypervisor_netdev", "kata_guest_diskstat", "kata_hypervisor_io_stat",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("grafana", tc.file))
			require.NoError(t, err)
			var d grafanaDashboard
			dec := json.NewDecoder(strings.NewReader(string(data)))
			require.NoError(t, dec.Decode(&d))
			require.NotEmpty(t, d.UID)
			require.NotEmpty(t, d.Title)

			var varNames []string
			used := map[string]bool{}
			check := func(where, expr string) {
				for _, n := range metricNames(expr) {
					used[n] = true
					if !known[n] {
						t.Errorf("%s: %q is not a series kata-monitor or a shim exposes (expr %s)", where, n, expr)
					}
				}
			}
			for _, v := range d.Templating.List {
				varNames = append(varNames, v.Name)
				switch v.Type {
				case "datasource":
					require.Equal(t, "prometheus", queryText(v.Query), "variable %s", v.Name)
				case "query":
					check("variable "+v.Name, templateQueryExpr(queryText(v.Query)))
				}
			}
			for _, want := range tc.vars {
				require.Contains(t, varNames, want)
			}

			ids := map[int]bool{}
			var walk func([]grafanaPanel)
			walk = func(panels []grafanaPanel) {
				for _, p := range panels {
					require.False(t, ids[p.ID], "duplicate panel id %d", p.ID)
					ids[p.ID] = true
					walk(p.Panels)
					if p.Type == "row" {
						continue
					}
					require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
					require.NotNil(t, p.Datasource, "panel %q", p.Title)
					require.Equal(t, "${datasource}", p.Datasource.UID, "panel %q", p.Title)
					for _, tg := range p.Targets {
						require.NotEmpty(t, tg.Expr, "panel %q target %s", p.Title, tg.RefID)
						check("panel "+p.Title, tg.Expr)
						for _, b := range checkMatcherValues(tg.Expr, values) {
							t.Errorf("panel %q: the shim exposes no %s", p.Title, b)
						}
					}
				}
			}
			walk(d.Panels)
			for _, want := range tc.mustUse {
				require.True(t, used[want], "no panel queries %s", want)
			}
			var all []string
			for n := range used {
				all = append(all, n)
			}
			slices.Sort(all)
			t.Logf("series queried: %s", strings.Join(all, ", "))
		})
	}
}
