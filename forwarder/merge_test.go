package forwarder

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMergeKeepsEverySeries: families exposed differently by different
// sandboxes keep every series the text format can carry; what it cannot
// carry is counted per sandbox and reason.
// Long for its table, one row per way families differ.
func TestMergeKeepsEverySeries(t *testing.T) {
	const gauge = "# HELP kata_guest_load Load.\n# TYPE kata_guest_load gauge\nkata_guest_load{item=\"load1\"} 1\nkata_guest_load{item=\"load5\"} 2\n"
	const untyped = "kata_guest_load{item=\"load1\"} 1\nkata_guest_load{item=\"load5\"} 2\n"
	const hist = "# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3\nlat_count 2\n"
	tests := []struct {
		name      string
		bodies    map[string]string // by sandbox id; ids sort a < b < c < d
		wantType  map[string]string // family -> TYPE line value
		wantLines int               // sample lines in the answer
		wantDrops map[string]map[string]int
		wantHelp  string // a HELP line the answer must hold
	}{
		{name: "lowest id untyped, three gauges", bodies: map[string]string{"a": untyped, "b": gauge, "c": gauge, "d": gauge},
			wantType: map[string]string{"kata_guest_load": "gauge"}, wantLines: 8},
		{name: "gauge first, one untyped later", bodies: map[string]string{"a": gauge, "b": untyped, "c": gauge},
			wantType: map[string]string{"kata_guest_load": "gauge"}, wantLines: 6},
		{name: "counter and gauge: the first typed wins, all kept",
			bodies:   map[string]string{"a": strings.Replace(gauge, "gauge", "counter", 1), "b": gauge},
			wantType: map[string]string{"kata_guest_load": "counter"}, wantLines: 4},
		{name: "help differs: the first wins, all kept",
			bodies:   map[string]string{"a": gauge, "b": strings.Replace(gauge, "Load.", "Other help.", 1)},
			wantType: map[string]string{"kata_guest_load": "gauge"}, wantLines: 4, wantHelp: "# HELP kata_guest_load Load.\n"},
		{name: "help only from a later sandbox",
			bodies:   map[string]string{"a": untyped, "b": gauge},
			wantType: map[string]string{"kata_guest_load": "gauge"}, wantLines: 4, wantHelp: "# HELP kata_guest_load Load.\n"},
		{name: "histogram and the same lines untyped",
			bodies:   map[string]string{"a": "# HELP lat Latency.\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3\nlat_count 2\n", "b": hist},
			wantType: map[string]string{"lat": "histogram"}, wantLines: 8},
		{name: "untyped bucket whose le is no float cannot go under histogram",
			bodies:   map[string]string{"a": "# HELP lat Latency.\nlat_bucket{le=\"x\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3\nlat_count 2\n", "b": hist},
			wantType: map[string]string{"lat": "histogram"}, wantLines: 7,
			wantDrops: map[string]map[string]int{"a": {"type_conflict": 1}}},
		{name: "gauge x_count next to histogram x",
			bodies:   map[string]string{"a": hist, "b": "# TYPE lat_count gauge\nlat_count{k=\"v\"} 5\n"},
			wantType: map[string]string{"lat": "histogram"}, wantLines: 4,
			wantDrops: map[string]map[string]int{"b": {"name_clash": 1}}},
		{name: "duplicate in one exposition",
			bodies:   map[string]string{"a": gauge + "kata_guest_load{item=\"load1\"} 9\n", "b": gauge},
			wantType: map[string]string{"kata_guest_load": "gauge"}, wantLines: 4,
			wantDrops: map[string]map[string]int{"a": {"duplicate": 1}}},
		{name: "label given twice",
			bodies:   map[string]string{"a": gauge + "kata_guest_load{item=\"x\",item=\"y\"} 9\n"},
			wantType: map[string]string{"kata_guest_load": "gauge"}, wantLines: 2,
			wantDrops: map[string]map[string]int{"a": {"invalid": 1}}},
		{name: "histogram bucket with a non-float le",
			bodies:   map[string]string{"a": strings.Replace(hist, `le="1"`, `le="one"`, 1)},
			wantType: map[string]string{"lat": "histogram"}, wantLines: 3,
			wantDrops: map[string]map[string]int{"a": {"invalid_for_type": 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.serve(tt.bodies)
			out := r.pull(t)
			parseText(t, out)
			lines := 0
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if !strings.HasPrefix(l, "#") {
					lines++
				}
			}
			assert.Equal(t, tt.wantLines, lines, out)
			if tt.wantHelp != "" {
				assert.Contains(t, out, tt.wantHelp)
				assert.Equal(t, 1, strings.Count(out, "# HELP "), out)
			}
			for fam, typ := range tt.wantType {
				assert.Equal(t, 1, strings.Count(out, "# TYPE "+fam+" "), out)
				assert.Contains(t, out, "# TYPE "+fam+" "+typ+"\n")
			}
			total := 0.0
			for id := range tt.bodies {
				st, ok := r.f.Status(id)
				require.True(t, ok)
				assert.Equal(t, tt.wantDrops[id], st.Dropped, "sandbox %s", id)
				for _, n := range st.Dropped {
					total += float64(n)
				}
			}
			assert.Equal(t, total, r.counter(t, "kata_monitor_series_dropped_total"))
		})
	}
}
