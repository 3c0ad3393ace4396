package codec

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

func decodeBlock(t testing.TB, b wal.Block) rwtest.Request {
	t.Helper()
	wr, err := rwtest.Decode(b.Data, Format(b.Format).V2(), Format(b.Format).Zstd())
	require.NoError(t, err)
	return wr
}

func mustRelabel(t *testing.T, rc relabel.Config) *relabel.Config {
	t.Helper()
	base := relabel.DefaultRelabelConfig
	if rc.Action != "" {
		base.Action = rc.Action
	}
	if rc.Regex.Regexp != nil {
		base.Regex = rc.Regex
	}
	base.SourceLabels, base.TargetLabel = rc.SourceLabels, rc.TargetLabel
	if rc.Replacement != "" {
		base.Replacement = rc.Replacement
	}
	require.NoError(t, base.Validate(model.UTF8Validation))
	return &base
}

// TestEncodeRoundTrip: what Encode writes decodes, with the generated
// types, to the input after write_relabel_configs. Long for its table,
// one row per rule set.
func TestEncodeRoundTrip(t *testing.T) {
	in := []series.Series{
		rwtest.Series("kata_a", []series.Sample{rwtest.Sample(1000, 1), rwtest.Sample(2000, 2)}, "sandbox_id", "s1"),
		rwtest.Series("kata_b", []series.Sample{rwtest.Sample(1500, math.Float64frombits(0x7ff0000000000002))}, "sandbox_id", "s1"), // staleness NaN
		rwtest.Series("go_gc", []series.Sample{rwtest.Sample(1000, 3)}, "sandbox_id", "s2"),
		rwtest.Series("kata_c", []series.Sample{rwtest.Sample(3000, 4)}, "sandbox_id", "s2", "zone", "z"),
		{Labels: []labels.Label{{Name: "__name__", Value: "empty"}}}, // no samples: skipped
	}
	tests := []struct {
		name        string
		rules       func(t *testing.T) []*relabel.Config
		want        []series.Series
		wantDropped int
	}{
		{
			name: "no rules",
			want: in[:4],
		},
		{
			name: "drop by name, add label, drop label",
			rules: func(t *testing.T) []*relabel.Config {
				return []*relabel.Config{
					mustRelabel(t, relabel.Config{Action: relabel.Drop, SourceLabels: model.LabelNames{"__name__"}, Regex: relabel.MustNewRegexp("go_.*")}),
					mustRelabel(t, relabel.Config{Action: relabel.Replace, TargetLabel: "a_node", Replacement: "n1"}),
					mustRelabel(t, relabel.Config{Action: relabel.LabelDrop, Regex: relabel.MustNewRegexp("zone")}),
				}
			},
			want: []series.Series{
				{Labels: []labels.Label{{Name: "__name__", Value: "kata_a"}, {Name: "a_node", Value: "n1"}, {Name: "sandbox_id", Value: "s1"}}, Samples: in[0].Samples},
				{Labels: []labels.Label{{Name: "__name__", Value: "kata_b"}, {Name: "a_node", Value: "n1"}, {Name: "sandbox_id", Value: "s1"}}, Samples: in[1].Samples},
				{Labels: []labels.Label{{Name: "__name__", Value: "kata_c"}, {Name: "a_node", Value: "n1"}, {Name: "sandbox_id", Value: "s2"}}, Samples: in[3].Samples},
			},
			wantDropped: 1,
		},
		{
			name: "labelkeep to nothing drops everything",
			rules: func(t *testing.T) []*relabel.Config {
				return []*relabel.Config{mustRelabel(t, relabel.Config{Action: relabel.LabelKeep, Regex: relabel.MustNewRegexp("nope")})}
			},
			want:        nil,
			wantDropped: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rules []*relabel.Config
			if tt.rules != nil {
				rules = tt.rules(t)
			}
			enc := NewEncoder(2, rules, testComp(t))
			// Encode twice: the second round reuses the scratch buffers and
			// must give the same result.
			for round := range 2 {
				blocks, st, err := enc.Encode(in, FormatV1)
				require.NoError(t, err)
				require.Equal(t, tt.wantDropped, st.DroppedRelabel, "round %d", round)
				var got []series.Series
				total := 0
				for _, b := range blocks {
					wr := decodeBlock(t, b)
					n := 0
					for _, ts := range wr.Timeseries {
						n += len(ts.Samples)
						require.LessOrEqual(t, ts.Samples[len(ts.Samples)-1].Timestamp, b.MaxTimestamp)
					}
					require.Equal(t, n, b.Samples)
					total += n
					got = append(got, wr.Timeseries...)
				}
				require.Equal(t, st.Samples, total)
				requireSeriesEqual(t, tt.want, got)
			}
		})
	}
}

// requireSeriesEqual compares labels and samples, NaN bits included.
func requireSeriesEqual(t *testing.T, want, got []series.Series) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Labels, got[i].Labels, "series %d", i)
		require.Len(t, got[i].Samples, len(want[i].Samples))
		for j, s := range want[i].Samples {
			g := got[i].Samples[j]
			require.Equal(t, s.Timestamp, g.Timestamp)
			require.Equal(t, math.Float64bits(s.Value), math.Float64bits(g.Value))
		}
	}
}

func TestBlockCutting(t *testing.T) {
	mk := func(sizes ...int) []series.Series {
		var out []series.Series
		for i, n := range sizes {
			s := make([]series.Sample, n)
			for j := range s {
				s[j] = rwtest.Sample(int64(1000*i+j), float64(j))
			}
			out = append(out, rwtest.Series(fmt.Sprintf("m%d", i), s))
		}
		return out
	}
	tests := []struct {
		name       string
		max        int
		sizes      []int
		wantBlocks [][]int // series indexes per block
	}{
		{name: "all fit", max: 10, sizes: []int{1, 2, 3}, wantBlocks: [][]int{{0, 1, 2}}},
		{name: "exact fill", max: 3, sizes: []int{1, 2, 3}, wantBlocks: [][]int{{0, 1}, {2}}},
		{name: "one per block", max: 1, sizes: []int{1, 1, 1}, wantBlocks: [][]int{{0}, {1}, {2}}},
		{name: "oversized series alone, never split", max: 4, sizes: []int{2, 9, 1, 3}, wantBlocks: [][]int{{0}, {1}, {2, 3}}},
		{name: "empty series skipped", max: 4, sizes: []int{2, 0, 2, 0, 0, 1}, wantBlocks: [][]int{{0, 2}, {5}}},
		{name: "nothing", max: 4, sizes: []int{0, 0}, wantBlocks: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := mk(tt.sizes...)
			blocks, st, err := NewEncoder(tt.max, nil, testComp(t)).Encode(in, FormatV1)
			require.NoError(t, err)
			require.Len(t, blocks, len(tt.wantBlocks))
			total := 0
			for i, b := range blocks {
				wr := decodeBlock(t, b)
				var names []int
				for _, ts := range wr.Timeseries {
					var idx int
					_, err := fmt.Sscanf(ts.Labels[0].Value, "m%d", &idx)
					require.NoError(t, err)
					names = append(names, idx)
					require.Len(t, ts.Samples, tt.sizes[idx], "series never split")
				}
				require.Equal(t, tt.wantBlocks[i], names, "block %d", i)
				if len(names) > 1 {
					require.LessOrEqual(t, b.Samples, tt.max)
				}
				total += b.Samples
			}
			require.Equal(t, st.Samples, total)
		})
	}
}

// BenchmarkAppendEncode measures turning one 152k-sample round (200
// sandboxes x 759 series) into compressed blocks with default settings
// (2000 samples a block) and with the harness's 10000, in chunks of 16384
// series as the forwarder hands them over. scratch-B is what the encoder
// keeps between rounds (its marshalling and output buffers).
func BenchmarkAppendEncode(b *testing.B) {
	round := rwtest.BenchRound(200, 759)
	for _, max := range []int{2000, 10000} {
		b.Run(strconv.Itoa(max), func(b *testing.B) {
			enc := NewEncoder(max, nil, testComp(b))
			b.ReportAllocs()
			var bytes int
			for b.Loop() {
				bytes = 0
				for c := range slices.Chunk(round, 16384) {
					blocks, _, err := enc.Encode(c, FormatV1)
					if err != nil {
						b.Fatalf("encode: %v", err)
					}
					for _, bl := range blocks {
						bytes += len(bl.Data)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(round)), "ns/sample")
			b.ReportMetric(float64(bytes)/float64(len(round)), "bytes/sample")
			b.ReportMetric(float64(cap(enc.m.raw)+cap(enc.out)), "scratch-B")
		})
	}
}

// TestEncoderScratch: an encoder cutting 16384 series into blocks of
// 10000 samples keeps a marshalling scratch of one Snappy piece (and a
// series) and an output buffer of about the chunk's compressed blocks,
// not the whole marshalled block twice over (about 5 MB before
// appendSnappyV1: issue 14's peak RSS).
func TestEncoderScratch(t *testing.T) {
	round := rwtest.BenchRound(20, 819) // 16380 series
	enc := NewEncoder(10000, nil, testComp(t))
	blocks, _, err := enc.Encode(round, FormatV1)
	require.NoError(t, err)
	compressed := 0
	for _, b := range blocks {
		compressed += len(b.Data)
		decodeBlock(t, b)
	}
	require.Len(t, blocks, 2)
	require.LessOrEqual(t, cap(enc.m.raw), 2*snappyPiece, "marshalling scratch")
	require.LessOrEqual(t, cap(enc.out), 2*(compressed+s2.MaxEncodedLen(snappyPiece)), "output buffer")
}

// testComp is a Compressor for tests.
func testComp(t testing.TB) *Compressor {
	t.Helper()
	c, err := NewCompressor()
	require.NoError(t, err)
	return c
}

// TestDecodeRequestRoundTrip: what the codec encodes it decodes back,
// labels, samples (NaN bits included) and metadata, for every format.
func TestDecodeRequestRoundTrip(t *testing.T) {
	comp := testComp(t)
	in := rwtest.V2Round(3, 4)
	in[0].Samples[0].Value = math.Float64frombits(0x7ff0000000000002)
	for _, f := range []Format{FormatV1, FormatV2, FormatV1 | FormatZstd, FormatV2 | FormatZstd} {
		data, err := comp.EncodeRequest(in, f)
		require.NoError(t, err)
		out, err := comp.DecodeRequest(data, f)
		require.NoError(t, err, f.String())
		require.Len(t, out, len(in))
		for i := range in {
			require.Equal(t, in[i].Labels, out[i].Labels)
			require.Equal(t, math.Float64bits(in[i].Samples[0].Value), math.Float64bits(out[i].Samples[0].Value))
			require.Equal(t, in[i].Samples[0].Timestamp, out[i].Samples[0].Timestamp)
			if f.V2() {
				require.Equal(t, in[i].Metadata.Type, out[i].Metadata.Type)
				require.Equal(t, in[i].Metadata.Help, out[i].Metadata.Help)
				require.Equal(t, in[i].Metadata.Unit, out[i].Metadata.Unit)
			}
		}
	}
}
