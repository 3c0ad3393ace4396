package fakeshim

import (
	"bytes"
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// parse parses an exposition into families keyed by name.
func parse(t testing.TB, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	require.NoError(t, err)
	return fams
}

// sampleValues flattens families into "name{labels}" -> value, keeping the
// kind of change the fake promises for each sample.
func sampleValues(fams map[string]*dto.MetricFamily) (grows, wobbles, fixed map[string]float64) {
	grows, wobbles, fixed = map[string]float64{}, map[string]float64{}, map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := func(suffix string) string {
				return name + suffix + "{" + strings.Join(labels, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				grows[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				wobbles[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				grows[key("_sum")] = h.GetSampleSum()
				grows[key("_count")] = float64(h.GetSampleCount())
				for _, b := range h.GetBucket() {
					grows[key("_bucket"+model.FloatString(b.GetUpperBound()).String())] = float64(b.GetCumulativeCount())
				}
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				grows[key("_sum")] = s.GetSampleSum()
				grows[key("_count")] = float64(s.GetSampleCount())
				for _, q := range s.GetQuantile() {
					fixed[key("_q"+model.FloatString(q.GetQuantile()).String())] = q.GetValue()
				}
			default:
				fixed[key("")] = m.GetUntyped().GetValue()
			}
		}
	}
	return grows, wobbles, fixed
}

func TestExpositionAtShared(t *testing.T) {
	baseGrows, baseWobbles, baseFixed := sampleValues(parse(t, sharedExposition))
	require.NotEmpty(t, baseGrows)
	require.NotEmpty(t, baseWobbles)
	require.NotEmpty(t, baseFixed)

	base := parse(t, sharedExposition)
	for n := int64(1); n <= 3; n++ {
		t.Run(string(rune('0'+n)), func(t *testing.T) {
			fams := parse(t, ExpositionAt(nil, n))
			require.Len(t, fams, len(base), "same families")
			grows, wobbles, fixed := sampleValues(fams)
			require.Len(t, grows, len(baseGrows))
			for k, v := range grows {
				require.Contains(t, baseGrows, k)
				require.Equal(t, baseGrows[k]+float64(n), v, "%s grows by exactly 1 per scrape", k)
			}
			for k, v := range wobbles {
				require.Contains(t, baseWobbles, k)
				want := baseWobbles[k] + float64(n%7)
				if math.IsNaN(want) {
					require.True(t, math.IsNaN(v), k)
					continue
				}
				require.Equal(t, want, v, k)
			}
			require.Equal(t, baseFixed, fixed, "quantiles unchanged")
		})
	}
}

func TestExpositionAtCounterStep(t *testing.T) {
	prev, _, _ := sampleValues(parse(t, ExpositionAt(nil, 1)))
	for n := int64(2); n <= 3; n++ {
		cur, _, _ := sampleValues(parse(t, ExpositionAt(nil, n)))
		for k, v := range cur {
			require.Equal(t, prev[k]+1, v, "%s at scrape %d", k, n)
		}
		prev = cur
	}
}

// TestExpositionAtRules: what each template rule renders at round n
// (counters, wrapping gauges, summaries, histograms, verbatim lines,
// special values). Long for its table, one row per template rule.
func TestExpositionAtRules(t *testing.T) {
	tests := []struct {
		name string
		tmpl string
		n    int64
		want string
	}{
		{
			name: "counter with timestamp",
			tmpl: "# TYPE c counter\nc{a=\"x\"} 10 1700000000000\n",
			n:    2,
			want: "# TYPE c counter\nc{a=\"x\"} 12 1700000000000\n",
		},
		{
			name: "gauge wraps at 7",
			tmpl: "# TYPE g gauge\ng 1.5\n",
			n:    9,
			want: "# TYPE g gauge\ng 3.5\n",
		},
		{
			name: "label value with brace, quote and spaces",
			tmpl: "# TYPE c counter\nc{a=\"} \\\" x\"} 1\n",
			n:    1,
			want: "# TYPE c counter\nc{a=\"} \\\" x\"} 2\n",
		},
		{
			name: "summary quantiles fixed, sum and count grow",
			tmpl: "# TYPE s summary\ns{quantile=\"0.5\"} 0.25\ns_sum 4\ns_count 8\n",
			n:    3,
			want: "# TYPE s summary\ns{quantile=\"0.5\"} 0.25\ns_sum 7\ns_count 11\n",
		},
		{
			name: "histogram buckets grow",
			tmpl: "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n",
			n:    1,
			want: "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 1.5\nh_count 3\n",
		},
		{
			name: "untyped and garbage verbatim",
			tmpl: "u 5\n\x00garbage {\n# TYPE c counter\nc nope\n",
			n:    4,
			want: "u 5\n\x00garbage {\n# TYPE c counter\nc nope\n",
		},
		{
			name: "no trailing newline",
			tmpl: "# TYPE c counter\nc 1",
			n:    1,
			want: "# TYPE c counter\nc 2",
		},
		{
			name: "special values",
			tmpl: "# TYPE g gauge\ng{a=\"1\"} +Inf\ng{a=\"2\"} NaN\n",
			n:    1,
			want: "# TYPE g gauge\ng{a=\"1\"} +Inf\ng{a=\"2\"} NaN\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, string(ExpositionAt([]byte(tt.tmpl), tt.n)))
		})
	}
}

func FuzzExpositionAt(f *testing.F) {
	f.Add([]byte("# TYPE c counter\nc{a=\"x\"} 10 1700000000000\n"), int64(1))
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2"), int64(3))
	f.Add([]byte("u{a=\"}\\\"\"} 5\n\x00{{"), int64(-2))
	f.Add(sharedExposition[:2000], int64(7))
	f.Fuzz(func(t *testing.T, tmpl []byte, n int64) {
		out := ExpositionAt(tmpl, n)
		require.Equal(t, out, ExpositionAt(tmpl, n), "deterministic")
		if !bytes.Contains(tmpl, []byte("TYPE")) {
			require.Equal(t, string(tmpl), string(out), "untyped input is verbatim")
		}
		if n == 0 && bytes.Count(tmpl, []byte("\n")) == bytes.Count(out, []byte("\n")) {
			return
		}
		require.Equal(t, bytes.Count(tmpl, []byte("\n")), bytes.Count(out, []byte("\n")), "same lines")
	})
}

func BenchmarkRender(b *testing.B) {
	tmpl := compile(sharedExposition)
	buf := make([]byte, 0, tmpl.size)
	b.ReportAllocs()
	b.SetBytes(int64(len(sharedExposition)))
	for n := int64(1); b.Loop(); n++ {
		buf = tmpl.render(buf[:0], n)
	}
}
