package forwarder

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/sources/cri"
)

// FuzzParse feeds arbitrary bytes to two sandboxes as their exposition,
// one as text and one as OpenMetrics, in a round after a round of other
// arbitrary bytes: nothing panics and the merged pull output always parses
// with expfmt, in UTF-8 syntax and escaped for a client without UTF-8
// names; every series in it carries its sandbox's sandbox_id (and, for the
// sandbox with a pod, its cri_* labels), whatever labels the exposition
// claims; and it is what a forwarder that never saw the earlier round
// writes (nothing a round parsed, cached or pooled leaks into the next).
func FuzzParse(f *testing.F) {
	seeds := []string{
		"# HELP a A.\n# TYPE a gauge\na 1\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
		"# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 3\ns_count 2\n",
		"# TYPE h histogram\nh_bucket{le=\"x\"} 1\nh_count -1\n# TYPE h_count counter\nh_count 1\n",
		"# TYPE c counter\nc_total 1\n# TYPE c_total gauge\nc_total 2\n",
		"{\"a.b\",\"c d\"=\"e\\\"f\"} 1 123\n",
		"go_goroutines{x=\"\\\\\\n\"} NaN\nprocess_x +Inf\n",
		"a{__name__=\"b\"} 1\n",
		"# TYPE \"\" gauge\n{\"\"} 1\n",
		"a{b=\"\xff\"} 1\n",
		"a 1\na 2\nbad line {\n",
		"# TYPE x counter\nx_total 1 # {trace_id=\"a\"} 1\nx_created 1.7e9\n# EOF\n",
		"# TYPE \"a.b\" gauge\n{\"a.b\"} 1\n# TYPE a_b gauge\na_b 2\nm{\"sandbox.id\"=\"x\"} 3\n",
	}
	for i, seed := range seeds {
		f.Add([]byte(seed), []byte(seeds[(i+1)%len(seeds)]))
	}
	f.Add([]byte(seeds[0]), []byte(seeds[0]))
	f.Add([]byte("# HELP a A.\n# TYPE a gauge\na 2\n"), []byte(seeds[0]))
	f.Fuzz(func(t *testing.T, body, prev []byte) {
		got, gotEscaped, gotOK := fuzzParseRounds(t, prev, body)
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(strings.NewReader(got))
		require.NoError(t, err, "input %q\noutput:\n%s", body, got)
		checkSandboxLabels(t, mfs, body, got)

		legacy := expfmt.NewTextParser(model.LegacyValidation)
		mfs, err = legacy.TextToMetricFamilies(strings.NewReader(gotEscaped))
		require.NoError(t, err, "escaped: input %q\noutput:\n%s", body, gotEscaped)
		checkSandboxLabels(t, mfs, body, gotEscaped)

		want, wantEscaped, ok := fuzzParseRounds(t, body)
		if !ok || !gotOK {
			return // a scrape ran out of its 10ms on a loaded host: that shim is left out, as it should be
		}
		require.Equal(t, want, got, "after a round of %q", prev)
		require.Equal(t, wantEscaped, gotEscaped, "escaped, after a round of %q", prev)
	})
}

// fuzzParseRounds runs one scheduled round per body in a new rig (both
// sandboxes, aaa as text, bbb with a pod as OpenMetrics, serve the body)
// and returns the pull output after the last one, in UTF-8 and escaped
// with underscores; ok is false when a scrape of the last round failed
// (the fake shims answer at once, so only the scrape timeout can fail
// one).
func fuzzParseRounds(t *testing.T, bodies ...[]byte) (utf8, escaped string, ok bool) {
	t.Helper()
	// A 10ms interval keeps the real-time jitter of the scheduled round
	// under 1ms.
	r := newRig(t, withPush, withConfig(func(c *Config) { c.ScrapeInterval, c.ScrapeTimeout = 10*time.Millisecond, 10*time.Millisecond }))
	r.sbs.set("aaa", "bbb")
	r.pods.set("bbb", cri.Pod{UID: "u", Name: "n", Namespace: "ns"})
	r.scraper.types["bbb"] = "application/openmetrics-text; version=1.0.0"
	failed := 0.0
	for _, body := range bodies {
		r.clock.Add(10 * time.Millisecond)
		r.scraper.set("aaa", string(body))
		r.scraper.set("bbb", string(body))
		failed = r.counter(t, "kata_monitor_scrape_failed_count")
		r.f.scheduledRound(context.Background())
	}
	ok = r.counter(t, "kata_monitor_scrape_failed_count") == failed
	var out bytes.Buffer
	require.NoError(t, r.f.WriteMetrics(context.Background(), &out, nil))
	utf8 = out.String()
	out.Reset()
	require.NoError(t, r.f.View(context.Background(), model.UnderscoreEscaping, func(_ uint64, write func(io.Writer, []string) error) error {
		return write(&out, nil)
	}))
	return utf8, out.String(), ok
}

// checkSandboxLabels fails unless every series of mfs has sandbox_id aaa
// or bbb, and bbb's series carry pod u/n/ns as cri_uid, cri_name and
// cri_namespace (FuzzParse's two sandboxes).
func checkSandboxLabels(t *testing.T, mfs map[string]*dto.MetricFamily, body []byte, out string) {
	t.Helper()
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			switch got["sandbox_id"] {
			case "aaa":
			case "bbb":
				if got["cri_uid"] != "u" || got["cri_name"] != "n" || got["cri_namespace"] != "ns" {
					t.Fatalf("%s%v: pod labels lost; input %q\noutput:\n%s", name, got, body, out)
				}
			default:
				t.Fatalf("%s%v: no sandbox_id of a sandbox; input %q\noutput:\n%s", name, got, body, out)
			}
		}
	}
}
