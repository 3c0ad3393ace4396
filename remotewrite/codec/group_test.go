package codec

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// nameAndFirst identifies a series by its name and its first sample's
// value (the tests give every input series a distinct value).
func seriesKeys(ss []series.Series) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%s/%g", s.Name(), s.Samples[0].Value)
	}
	return out
}

func TestGrouperOrder(t *testing.T) {
	upper := series.Series{Labels: []labels.Label{{Name: "Zone", Value: "a"}, {Name: "__name__", Value: "b"}}, Samples: []series.Sample{rwtest.Sample(1, 9)}}
	noName := series.Series{Labels: []labels.Label{{Name: "job", Value: "x"}}, Samples: []series.Sample{rwtest.Sample(1, 8)}}
	for _, tt := range []struct {
		name string
		in   []series.Series
		want []string
	}{
		{"empty", nil, []string{}},
		{"one", []series.Series{rwtest.Series("b", []series.Sample{rwtest.Sample(1, 1)})}, []string{"b/1"}},
		{"one name keeps order", []series.Series{
			rwtest.Series("a", []series.Sample{rwtest.Sample(1, 2)}, "sb", "2"),
			rwtest.Series("a", []series.Sample{rwtest.Sample(1, 1)}, "sb", "1"),
		}, []string{"a/2", "a/1"}},
		{"sandbox-major becomes name-major, stable within a name", []series.Series{
			rwtest.Series("c", []series.Sample{rwtest.Sample(1, 1)}, "sb", "1"),
			rwtest.Series("a", []series.Sample{rwtest.Sample(1, 2)}, "sb", "1"),
			rwtest.Series("b", []series.Sample{rwtest.Sample(1, 3)}, "sb", "1"),
			rwtest.Series("c", []series.Sample{rwtest.Sample(1, 4)}, "sb", "2"),
			rwtest.Series("a", []series.Sample{rwtest.Sample(1, 5)}, "sb", "2"),
			rwtest.Series("b", []series.Sample{rwtest.Sample(1, 6)}, "sb", "2"),
		}, []string{"a/2", "a/5", "b/3", "b/6", "c/1", "c/4"}},
		{"a name after an upper-case label, and no name at all", []series.Series{
			rwtest.Series("c", []series.Sample{rwtest.Sample(1, 1)}),
			upper,
			noName,
			rwtest.Series("b", []series.Sample{rwtest.Sample(1, 2)}),
		}, []string{"/8", "b/9", "b/2", "c/1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var g grouper
			for range 2 { // the second call reuses the scratch
				in := slices.Clone(tt.in)
				got := g.group(in)
				if k := seriesKeys(got); !slices.Equal(k, tt.want) {
					t.Fatalf("order %v, want %v", k, tt.want)
				}
				if !slices.EqualFunc(in, tt.in, func(a, b series.Series) bool { return a.Samples[0] == b.Samples[0] }) {
					t.Fatal("the caller's slice was reordered")
				}
				g.release()
			}
		})
	}
}

// TestEncodeV2GroupsByName: a 2.0 round is sent grouped by metric name
// (every series once, samples of a series in order), and the grouping
// makes it smaller than the same blocks in the given order, with zstd and
// with snappy; 1.0 keeps the given order.
// Long for its checks per format, in one table.
func TestEncodeV2GroupsByName(t *testing.T) {
	round := rwtest.BenchRound(20, 759)
	for i := range round {
		round[i].Samples = []series.Sample{rwtest.Sample(1_700_000_000_000, float64(i%759)), rwtest.Sample(1_700_000_015_000, float64(i%759+1))}
	}
	comp := testComp(t)
	decodeAll := func(blocks []wal.Block, f Format) []series.Series {
		var out []series.Series
		for _, b := range blocks {
			ss, err := comp.DecodeRequest(b.Data, f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ss...)
		}
		return out
	}
	size := func(blocks []wal.Block) (n int) {
		for _, b := range blocks {
			n += len(b.Data)
		}
		return n
	}
	for _, f := range []Format{FormatV1, FormatV2, FormatZstd, FormatV2 | FormatZstd} {
		t.Run(f.String(), func(t *testing.T) {
			blocks, st, err := NewEncoder(2000, nil, comp).Encode(round, f)
			if err != nil || st.Samples != 2*len(round) {
				t.Fatalf("encode: %v, %d samples", err, st.Samples)
			}
			got := decodeAll(blocks, f)
			if len(got) != len(round) {
				t.Fatalf("%d series, want %d", len(got), len(round))
			}
			grouped := f.V2()
			for i, s := range got {
				if len(s.Samples) != 2 || s.Samples[0].Timestamp >= s.Samples[1].Timestamp {
					t.Fatalf("series %d: samples %v out of order", i, s.Samples)
				}
				if i > 0 && grouped && got[i-1].Name() > s.Name() {
					t.Fatalf("series %d: %s after %s", i, s.Name(), got[i-1].Name())
				}
				if !grouped && labels.Compare(labels.New(s.Labels...), labels.New(round[i].Labels...)) != 0 {
					t.Fatalf("series %d is %v, want the given order's %v", i, s.Labels, round[i].Labels)
				}
			}
			if !grouped {
				return
			}
			// Every series exactly once.
			seen := map[string]int{}
			for _, s := range got {
				seen[labels.New(s.Labels...).String()]++
			}
			for _, s := range round {
				if seen[labels.New(s.Labels...).String()] != 1 {
					t.Fatalf("series %v sent %d times", s.Labels, seen[labels.New(s.Labels...).String()])
				}
			}
			// The same encoder without grouping, for the size.
			var m marshaler
			ungrouped := 0
			for _, ch := range ChunkBySamples(round, 2000) {
				raw, err := m.marshal(ch, f)
				if err != nil {
					t.Fatal(err)
				}
				ungrouped += len(comp.Compress(nil, raw, f))
			}
			if g := size(blocks); g >= ungrouped*9/10 {
				t.Fatalf("grouped %d bytes, given order %d: want at least 10 %% less", g, ungrouped)
			}
			t.Logf("grouped %d bytes, given order %d", size(blocks), ungrouped)
		})
	}
}
