package codec

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// toPrompb is the request prompb's generated code would marshal.
func toPrompb(ss []series.Series) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for _, s := range ss {
		ts := prompb.TimeSeries{}
		for _, l := range s.Labels {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		}
		for _, x := range s.Samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Value: x.Value, Timestamp: x.Timestamp})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}

// TestMarshalV1MatchesPrompb: the hand-written 1.0 marshaller writes the
// bytes prompb's generated one writes, for the odd cases (empty names and
// values, zero, negative zero, NaN, staleness markers, negative and large
// timestamps, series without labels or samples, long strings) and random
// series.
func TestMarshalV1MatchesPrompb(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 300))
	cases := [][]series.Series{
		nil,
		{{}},
		{{Labels: []labels.Label{{Name: "", Value: ""}}, Samples: []series.Sample{{}}}},
		{{Labels: []labels.Label{{Name: "__name__", Value: "up"}, {Name: "a", Value: ""}},
			Samples: []series.Sample{{Value: math.Copysign(0, -1), Timestamp: -1}, {Value: math.NaN(), Timestamp: math.MaxInt64},
				{Value: math.Float64frombits(value.StaleNaN), Timestamp: math.MinInt64}, {Value: math.Inf(-1), Timestamp: 1}}}},
		{{Labels: []labels.Label{{Name: long, Value: long}}, Samples: []series.Sample{{Value: 1e300, Timestamp: 1 << 40}}}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		var ss []series.Series
		for range rng.IntN(20) {
			var s series.Series
			for range rng.IntN(6) {
				s.Labels = append(s.Labels, labels.Label{Name: string(bytes.Repeat([]byte("n"), rng.IntN(200))), Value: string(bytes.Repeat([]byte("v"), rng.IntN(3)))})
			}
			for range rng.IntN(3) {
				s.Samples = append(s.Samples, series.Sample{Value: rng.NormFloat64() * float64(rng.IntN(2)), Timestamp: rng.Int64N(1<<50) - 1<<49})
			}
			ss = append(ss, s)
		}
		cases = append(cases, ss)
	}
	var m marshaler
	for i, ss := range cases {
		want, err := toPrompb(ss).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.marshalV1(ss)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: marshalV1\n%x\nprompb\n%x", i, got, want)
		}
	}
}

// BenchmarkMarshalV1 marshals one chunk of 8192 series of 12 labels and
// one sample, as the forwarder hands them over, as a 1.0 request.
func BenchmarkMarshalV1(b *testing.B) {
	ss := make([]series.Series, 8192)
	for i := range ss {
		ls := make([]labels.Label, 12)
		for j := range ls {
			ls[j] = labels.Label{Name: "label_name_" + string(rune('a'+j)), Value: "some_label_value_0123456789"}
		}
		ss[i] = series.Series{Labels: ls, Samples: []series.Sample{{Value: float64(i), Timestamp: 1_700_000_000_000}}}
	}
	b.Run("direct", func(b *testing.B) {
		var m marshaler
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.marshalV1(ss); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prompb", func(b *testing.B) { // what marshalV1 replaced
		req := toPrompb(ss)
		var raw []byte
		b.ReportAllocs()
		for b.Loop() {
			for i := range ss { // the copy into prompb types it made
				for j, l := range ss[i].Labels {
					req.Timeseries[i].Labels[j] = prompb.Label{Name: l.Name, Value: l.Value}
				}
			}
			n := req.Size()
			if cap(raw) < n {
				raw = make([]byte, n)
			}
			if _, err := req.MarshalToSizedBuffer(raw[:n]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCompressSnappy compresses one marshalled chunk (8192 series of
// 12 labels) as a Snappy block, with s2's Snappy-compatible encoder (what
// compress uses) and with golang/snappy's.
func BenchmarkCompressSnappy(b *testing.B) {
	ss := make([]series.Series, 8192)
	for i := range ss {
		ls := make([]labels.Label, 12)
		for j := range ls {
			ls[j] = labels.Label{Name: "label_name_" + string(rune('a'+j)), Value: "some_label_value_" + string(rune('a'+i%26))}
		}
		ss[i] = series.Series{Labels: ls, Samples: []series.Sample{{Value: float64(i), Timestamp: 1_700_000_000_000}}}
	}
	var m marshaler
	raw, err := m.marshalV1(ss)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("s2", func(b *testing.B) {
		dst := make([]byte, 0, s2.MaxEncodedLen(len(raw)))
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			s2.EncodeSnappy(dst[:cap(dst)], raw)
		}
	})
	b.Run("golang-snappy", func(b *testing.B) {
		dst := make([]byte, 0, snappy.MaxEncodedLen(len(raw)))
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			snappy.Encode(dst[:cap(dst)], raw)
		}
	})
	got, err := snappy.Decode(nil, s2.EncodeSnappy(nil, raw))
	if err != nil || !bytes.Equal(got, raw) {
		b.Fatalf("golang/snappy cannot read s2's block: %v", err)
	}
}
