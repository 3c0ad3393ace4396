package forwarder

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/sources/cri"
)

// TestWriteMetricsRendering: the pull answer for sandboxes' expositions and
// pods, byte for byte (merging, renaming, label precedence, untyped
// strays). Long for its table: each row is a whole exposition in and out.
func TestWriteMetricsRendering(t *testing.T) {
	web := cri.Pod{UID: "u1", Name: "web", Namespace: "default"}
	tests := []struct {
		name   string
		bodies map[string]string
		pods   map[string]cri.Pod
		want   string
	}{{
		name: "two sandboxes merge into one HELP/TYPE per family, sorted, ids in order",
		bodies: map[string]string{
			"aaa": "# HELP kata_shim_fds Open fds.\n# TYPE kata_shim_fds gauge\nkata_shim_fds 12\n" +
				"# HELP kata_shim_rpc Rpc calls.\n# TYPE kata_shim_rpc counter\nkata_shim_rpc{action=\"create\"} 3\n",
			"bbb": "# HELP kata_shim_rpc Rpc calls.\n# TYPE kata_shim_rpc counter\nkata_shim_rpc{action=\"create\"} 5\n" +
				"# HELP kata_shim_fds Open fds.\n# TYPE kata_shim_fds gauge\nkata_shim_fds 7\n",
		},
		pods: map[string]cri.Pod{"aaa": web},
		want: "# HELP kata_shim_fds Open fds.\n# TYPE kata_shim_fds gauge\n" +
			"kata_shim_fds{cri_name=\"web\",cri_namespace=\"default\",cri_uid=\"u1\",sandbox_id=\"aaa\"} 12\n" +
			"kata_shim_fds{sandbox_id=\"bbb\"} 7\n" +
			"# HELP kata_shim_rpc Rpc calls.\n# TYPE kata_shim_rpc counter\n" +
			"kata_shim_rpc{action=\"create\",cri_name=\"web\",cri_namespace=\"default\",cri_uid=\"u1\",sandbox_id=\"aaa\"} 3\n" +
			"kata_shim_rpc{action=\"create\",sandbox_id=\"bbb\"} 5\n",
	}, {
		name: "go_ and process_ families renamed with every sample name",
		bodies: map[string]string{"aaa": `# HELP go_gc_duration_seconds A summary.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 6e-05
go_gc_duration_seconds_sum 0.13
go_gc_duration_seconds_count 1873
# HELP process_cpu_seconds_total CPU.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5
# HELP go_sched_latencies_seconds Lat.
# TYPE go_sched_latencies_seconds histogram
go_sched_latencies_seconds_bucket{le="0.1"} 3
go_sched_latencies_seconds_bucket{le="+Inf"} 4
go_sched_latencies_seconds_sum 0.2
go_sched_latencies_seconds_count 4
`},
		want: `# HELP kata_shim_go_gc_duration_seconds A summary.
# TYPE kata_shim_go_gc_duration_seconds summary
kata_shim_go_gc_duration_seconds{quantile="0.5",sandbox_id="aaa"} 6e-05
kata_shim_go_gc_duration_seconds_sum{sandbox_id="aaa"} 0.13
kata_shim_go_gc_duration_seconds_count{sandbox_id="aaa"} 1873
# HELP kata_shim_go_sched_latencies_seconds Lat.
# TYPE kata_shim_go_sched_latencies_seconds histogram
kata_shim_go_sched_latencies_seconds_bucket{le="0.1",sandbox_id="aaa"} 3
kata_shim_go_sched_latencies_seconds_bucket{le="+Inf",sandbox_id="aaa"} 4
kata_shim_go_sched_latencies_seconds_sum{sandbox_id="aaa"} 0.2
kata_shim_go_sched_latencies_seconds_count{sandbox_id="aaa"} 4
# HELP kata_shim_process_cpu_seconds_total CPU.
# TYPE kata_shim_process_cpu_seconds_total counter
kata_shim_process_cpu_seconds_total{sandbox_id="aaa"} 1.5
`,
	}, {
		name: "our labels win over the shim's, empty labels dropped, timestamps kept",
		bodies: map[string]string{"aaa": "# TYPE up gauge\n" +
			"up{sandbox_id=\"evil\",cri_uid=\"evil\",x=\"\"} 1 1700000000000\n"},
		want: "# TYPE up gauge\nup{sandbox_id=\"aaa\"} 1 1700000000000\n",
	}, {
		name:   "a series outside the current family is its own untyped family",
		bodies: map[string]string{"aaa": "# HELP a A.\n# TYPE a gauge\na 1\nb 2\n"},
		want:   "# HELP a A.\n# TYPE a gauge\na{sandbox_id=\"aaa\"} 1\n# TYPE b untyped\nb{sandbox_id=\"aaa\"} 2\n",
	}, {
		name:   "special values",
		bodies: map[string]string{"aaa": "# TYPE v gauge\nv{k=\"inf\"} +Inf\nv{k=\"nan\"} NaN\nv{k=\"ninf\"} -Inf\nv{k=\"big\"} 1e+300\n"},
		want: "# TYPE v gauge\nv{k=\"inf\",sandbox_id=\"aaa\"} +Inf\nv{k=\"nan\",sandbox_id=\"aaa\"} NaN\n" +
			"v{k=\"ninf\",sandbox_id=\"aaa\"} -Inf\nv{k=\"big\",sandbox_id=\"aaa\"} 1e+300\n",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.serve(tc.bodies)
			for id, pod := range tc.pods {
				r.pods.set(id, pod)
			}
			got := r.pull(t)
			assert.Equal(t, tc.want, got)
			parseText(t, got)
		})
	}
}

func TestWriteMetricsPrefixes(t *testing.T) {
	body := "# TYPE kata_shim_fds gauge\nkata_shim_fds 1\n# TYPE kata_agent_io counter\nkata_agent_io 2\n" +
		"# TYPE go_goroutines gauge\ngo_goroutines 3\n# TYPE kata_guest_load gauge\nkata_guest_load 4\n"
	tests := []struct {
		prefixes []string
		want     []string
	}{
		{nil, []string{"kata_agent_io", "kata_guest_load", "kata_shim_fds", "kata_shim_go_goroutines"}},
		{[]string{"kata_shim_"}, []string{"kata_shim_fds", "kata_shim_go_goroutines"}},
		{[]string{"kata_agent", "kata_guest"}, []string{"kata_agent_io", "kata_guest_load"}},
		{[]string{"kata_shim_go_", "kata_agent"}, []string{"kata_agent_io", "kata_shim_go_goroutines"}},
		{[]string{"nothing"}, nil},
	}
	r := newRig(t)
	r.sbs.set("aaa")
	r.scraper.set("aaa", body)
	for _, tc := range tests {
		t.Run(strings.Join(tc.prefixes, ","), func(t *testing.T) {
			mfs := parseText(t, r.pull(t, tc.prefixes...))
			var got []string
			for name := range mfs {
				got = append(got, name)
			}
			assert.ElementsMatch(t, tc.want, got)
		})
	}
	assert.Equal(t, 1, r.scraper.callCount("aaa"), "the snapshot serves every filter")
}

func TestWriteMetricsEscaping(t *testing.T) {
	hostile := "we\"b\\x\nend"
	tests := []struct {
		name    string
		pod     *cri.Pod
		body    string
		wantLbl map[string]string
	}{{
		name:    "hostile pod metadata",
		pod:     &cri.Pod{UID: "u\"1", Name: hostile, Namespace: "ns\\"},
		body:    "# TYPE up gauge\nup 1\n",
		wantLbl: map[string]string{"sandbox_id": "aaa", "cri_uid": "u\"1", "cri_name": hostile, "cri_namespace": "ns\\"},
	}, {
		name:    "hostile shim label and help",
		body:    "# HELP up Says \"hi\" \\ and\\nmore.\n# TYPE up gauge\nup{v=\"we\\\"b\\\\x\\nend\"} 1\n",
		wantLbl: map[string]string{"sandbox_id": "aaa", "v": hostile},
	}, {
		name:    "UTF-8 names are quoted",
		body:    "# TYPE \"my.metric\" gauge\n{\"my.metric\",\"a.b\"=\"c\"} 1\n",
		wantLbl: map[string]string{"sandbox_id": "aaa", "a.b": "c"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.sbs.set("aaa")
			if tc.pod != nil {
				r.pods.set("aaa", *tc.pod)
			}
			r.scraper.set("aaa", tc.body)
			out := r.pull(t)
			mfs := parseText(t, out)
			require.Len(t, mfs, 1, out)
			for _, mf := range mfs {
				require.Len(t, mf.GetMetric(), 1)
				got := map[string]string{}
				for _, lp := range mf.GetMetric()[0].GetLabel() {
					got[lp.GetName()] = lp.GetValue()
				}
				assert.Equal(t, tc.wantLbl, got)
				if strings.Contains(tc.body, "HELP") {
					assert.Equal(t, "Says \"hi\" \\ and\nmore.", mf.GetHelp())
				}
			}
		})
	}
}

func TestWriteMetricsSharedExposition(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(strings.Repeat("sandbox,", n), func(t *testing.T) {
			r := newRig(t)
			var ids []string
			for i := range n {
				ids = append(ids, sandboxID(i))
				r.scraper.set(sandboxID(i), sharedExposition(t))
				r.pods.set(sandboxID(i), cri.Pod{UID: "uid", Name: "pod", Namespace: "ns"})
			}
			r.sbs.set(ids...)
			mfs := parseText(t, r.pull(t))
			assert.Len(t, mfs, 75)
			assert.Equal(t, 759*n, seriesCount(mfs))
			for name := range mfs {
				assert.False(t, strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_"), name)
			}
			for i := range n {
				st, ok := r.f.Status(sandboxID(i))
				require.True(t, ok)
				assert.Equal(t, 759, st.Series)
				assert.Empty(t, st.Err)
			}
		})
	}
}

func TestWriteMetricsHungShim(t *testing.T) {
	r := newRig(t, withConfig(func(c *Config) { c.ScrapeTimeout = 200 * time.Millisecond }))
	r.sbs.set("aaa", "bbb", "ccc")
	r.scraper.set("aaa", "# TYPE up gauge\nup 1\n")
	r.scraper.hang["bbb"] = true
	r.scraper.set("ccc", "# TYPE up gauge\nup 3\n")

	began := time.Now()
	out := r.pull(t)
	took := time.Since(began)
	assert.GreaterOrEqual(t, took, 200*time.Millisecond)
	assert.Less(t, took, 2*time.Second)
	assert.Equal(t, "# TYPE up gauge\nup{sandbox_id=\"aaa\"} 1\nup{sandbox_id=\"ccc\"} 3\n", out)
	st, ok := r.f.Status("bbb")
	require.True(t, ok)
	assert.Contains(t, st.Err, "deadline")
	assert.Equal(t, 1.0, r.counter(t, "kata_monitor_scrape_failed_count"))
	assert.Equal(t, 3.0, r.counter(t, "kata_monitor_scrape_count"))
}

func TestWriteMetricsConcurrentCallersShareOneRound(t *testing.T) {
	// In a bubble, Wait says when every caller is blocked: the leader's
	// round on the gate, the others waiting for that round.
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		r.sbs.set("aaa", "bbb")
		r.scraper.set("aaa", "# TYPE up gauge\nup 1\n")
		r.scraper.set("bbb", "# TYPE up gauge\nup 2\n")
		gate := make(chan struct{})
		r.scraper.gate = gate

		const callers = 8
		outs := make([]string, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				var buf bytes.Buffer
				errs[i] = r.f.WriteMetrics(context.Background(), &buf, nil)
				outs[i] = buf.String()
			})
		}
		synctest.Wait()
		assert.Equal(t, 1, r.scraper.callCount("aaa"), "one round in flight")
		close(gate)
		wg.Wait()
		for i := range callers {
			require.NoError(t, errs[i])
			assert.Equal(t, outs[0], outs[i])
		}
		assert.Equal(t, 1, r.scraper.callCount("aaa"))
		assert.Equal(t, 1, r.scraper.callCount("bbb"))
		assert.Equal(t, 1.0, r.counter(t, "kata_monitor_rounds_total"))
	})
}

func TestWriteMetricsCancelledWaiter(t *testing.T) {
	r := newRig(t)
	r.sbs.set("aaa")
	r.scraper.set("aaa", "# TYPE up gauge\nup 1\n")
	gate := make(chan struct{})
	r.scraper.gate = gate
	leader := make(chan string)
	go func() {
		var buf bytes.Buffer
		_ = r.f.WriteMetrics(context.Background(), &buf, nil)
		leader <- buf.String()
	}()
	require.Eventually(t, func() bool { return r.scraper.callCount("aaa") == 1 }, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.f.WriteMetrics(ctx, &bytes.Buffer{}, nil)
	require.ErrorIs(t, err, context.Canceled)
	close(gate)
	assert.Equal(t, "# TYPE up gauge\nup{sandbox_id=\"aaa\"} 1\n", <-leader)
}

func TestWriteMetricsSnapshotReuse(t *testing.T) {
	r := newRig(t, withConfig(func(c *Config) { c.SnapshotMaxAge = 5 * time.Second }))
	r.sbs.set("aaa")
	r.scraper.set("aaa", "# TYPE up gauge\nup 1\n")
	steps := []struct {
		advance   time.Duration
		wantCalls int
	}{
		{0, 1},
		{0, 1},
		{4 * time.Second, 1},
		{time.Second, 2}, // 5s old: no longer younger than max age
		{time.Second, 2},
	}
	for i, s := range steps {
		r.clock.Add(s.advance)
		r.pull(t)
		assert.Equal(t, s.wantCalls, r.scraper.callCount("aaa"), "step %d", i)
	}
}

func TestParseProblemsAreCounted(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		want        string
		wantParse   float64
		wantDup     float64
		wantInvalid float64
	}{{
		name:      "invalid exposition keeps the series before the error",
		body:      "# TYPE a gauge\na 1\na{x=\"1\"} 2\nthis is { not valid\na{x=\"2\"} 3\n",
		want:      "# TYPE a gauge\na{sandbox_id=\"aaa\"} 1\na{x=\"1\",sandbox_id=\"aaa\"} 2\n",
		wantParse: 1,
	}, {
		name:    "duplicate series keep the first",
		body:    "# TYPE a gauge\na{x=\"1\",y=\"2\"} 1\na{y=\"2\",x=\"1\"} 2\na{x=\"1\",y=\"2\"} 3\n",
		want:    "# TYPE a gauge\na{x=\"1\",y=\"2\",sandbox_id=\"aaa\"} 1\n",
		wantDup: 2,
	}, {
		name:        "duplicate label names are invalid",
		body:        "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\na 2\n",
		want:        "# TYPE a gauge\na{sandbox_id=\"aaa\"} 2\n",
		wantInvalid: 1,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.sbs.set("aaa")
			r.scraper.set("aaa", tc.body)
			assert.Equal(t, tc.want, r.pull(t))
			assert.Equal(t, tc.wantParse, r.counter(t, "kata_monitor_scrape_parse_errors_total"))
			assert.Equal(t, tc.wantDup, r.counter(t, "kata_monitor_duplicate_series_total"))
			assert.Equal(t, tc.wantInvalid, r.counter(t, "kata_monitor_invalid_series_total"))
		})
	}
}

// TestDuplicateAfterInternerReset: the interner drops its tables when
// churn grows them; a series spelled anew after that is still the same
// series as the entry built before (dedupe compares content, not the
// shared pointers).
func TestDuplicateAfterInternerReset(t *testing.T) {
	r := newRig(t)
	r.sbs.set("aaa")
	r.scraper.set("aaa", "# TYPE a gauge\na{x=\"1\",y=\"2\"} 1\n")
	r.pull(t)
	r.f.env.Reset(0)
	r.scraper.set("aaa", "# TYPE a gauge\na{y=\"2\",x=\"1\"} 5\na{x=\"1\",y=\"2\"} 6\n")
	r.clock.Add(time.Minute)
	assert.Equal(t, "# TYPE a gauge\na{x=\"1\",y=\"2\",sandbox_id=\"aaa\"} 5\n", r.pull(t))
	assert.Equal(t, 1.0, r.counter(t, "kata_monitor_duplicate_series_total"))
}

func TestWriteMetricsScrapeError(t *testing.T) {
	r := newRig(t)
	r.sbs.set("aaa", "bbb")
	r.scraper.set("aaa", "# TYPE up gauge\nup 1\n")
	r.scraper.fail("bbb", errors.New("connection refused"))
	assert.Equal(t, "# TYPE up gauge\nup{sandbox_id=\"aaa\"} 1\n", r.pull(t))
	st, ok := r.f.Status("bbb")
	require.True(t, ok)
	assert.Equal(t, "connection refused", st.Err)
	_, ok = r.f.Status("zzz")
	assert.False(t, ok)
}
