package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/s2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// toPrompb is the request prompb's generated code would marshal.
func toPrompb(ss []series.Series) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for _, s := range ss {
		ts := prompb.TimeSeries{}
		for _, l := range s.AppendLabels(nil) {
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
		requireMarshalV1(t, &m, i, ss)
	}
}

// requireMarshalV1 fails the test unless m.marshalV1 writes the bytes
// prompb's generated marshaller writes for case i, ss.
func requireMarshalV1(t *testing.T, m *marshaler, i int, ss []series.Series) {
	t.Helper()
	want, werr := toPrompb(ss).Marshal()
	got, gerr := m.marshalV1(ss)
	sameBytes(t, i, got, gerr, want, werr)
}

// sameBytes fails the test unless both marshallings of case i succeeded
// with the same bytes, and returns them.
func sameBytes(t *testing.T, i int, got []byte, gotErr error, want []byte, wantErr error) []byte {
	t.Helper()
	if err := errors.Join(gotErr, wantErr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("case %d: got\n%x\nwant\n%x", i, got, want)
	}
	return got
}

// randomTemplateSeries returns n series of random templates (shared by
// several series, some with a slot for __name__ or none at all) and
// values (empty ones included, which leave their label out), mixed with
// plain label series, with values long enough for two-byte lengths.
func randomTemplateSeries(rng *rand.Rand, n int) []series.Series {
	str := func(max int) string { return string(bytes.Repeat([]byte{byte('a' + rng.IntN(3))}, rng.IntN(max))) }
	var tmpls []*series.Template
	for range 1 + rng.IntN(4) {
		var ls []labels.Label
		var slots []int
		for i := range rng.IntN(7) {
			ls = append(ls, labels.Label{Name: fmt.Sprintf("%c%s", 'a'+i, str(150)), Value: str(200)})
			slot := -1
			if rng.IntN(2) == 0 {
				slot = rng.IntN(5) // slot 4 is past every Values but the longest
			}
			slots = append(slots, slot)
		}
		tmpls = append(tmpls, series.NewTemplate(ls, slots))
	}
	var vals []*series.Values
	for range 1 + rng.IntN(3) {
		var v []string
		for range rng.IntN(6) {
			v = append(v, str(300))
		}
		vals = append(vals, series.NewValues(v...))
	}
	vals = append(vals, nil)
	mds := []*series.Metadata{nil, {Family: "f", Type: "counter", Help: str(20)}, {Family: "g", Type: "gauge", Help: str(20), Unit: str(3)}}
	ss := make([]series.Series, n)
	for i := range ss {
		s := &ss[i]
		if rng.IntN(4) == 0 {
			for range rng.IntN(4) {
				s.Labels = append(s.Labels, labels.Label{Name: str(20), Value: str(20)})
			}
		} else {
			s.Template, s.Values = tmpls[rng.IntN(len(tmpls))], vals[rng.IntN(len(vals))]
		}
		for range rng.IntN(3) {
			s.Samples = append(s.Samples, series.Sample{Value: rng.NormFloat64() * float64(rng.IntN(2)), Timestamp: rng.Int64N(1<<50) - 1<<49})
		}
		s.Metadata = mds[rng.IntN(len(mds))]
	}
	return ss
}

// materialized returns ss with every label set given as Labels.
func materialized(ss []series.Series) []series.Series {
	out := make([]series.Series, len(ss))
	for i, s := range ss {
		out[i] = series.Series{Labels: s.AppendLabels(nil), Samples: s.Samples, Metadata: s.Metadata}
	}
	return out
}

// TestMarshalV2PreparedMatches: a 2.0 request of series given as templates
// and values (their symbol references looked up once per request,
// prepared.go) is byte for byte the request of the same label sets given
// as Labels, symbols table included, and decodes to those label sets.
func TestMarshalV2PreparedMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var m, plain marshaler
	comp, err := NewCompressor()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		ss := randomTemplateSeries(rng, rng.IntN(30))
		want, werr := plain.marshalV2(materialized(ss))
		g, gerr := m.marshalV2(ss)
		got := sameBytes(t, i, g, gerr, want, werr) // templates, labels
		dec, err := comp.DecodeRequest(comp.Compress(nil, got, FormatV2), FormatV2)
		if err != nil {
			t.Fatal(err)
		}
		for j := range ss {
			if w := ss[j].AppendLabels(nil); !slices.Equal(dec[j].Labels, w) && len(w)+len(dec[j].Labels) > 0 {
				t.Fatalf("case %d series %d: decoded %v, want %v", i, j, dec[j].Labels, w)
			}
		}
	}
}

// TestMarshalV1PreparedMatchesPrompb: series given as a template and
// values (prepared.go) marshal to the bytes prompb's generated code writes
// for their label sets, in requests mixing them with plain series, and
// their labels (series.Series.AppendLabels) are what the template and
// values say.
func TestMarshalV1PreparedMatchesPrompb(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var m marshaler
	for i := range 300 {
		requireMarshalV1(t, &m, i, randomTemplateSeries(rng, rng.IntN(30)))
	}
	// A template's labels: slot values filled in, empty ones left out.
	tm := series.NewTemplate([]labels.Label{{Name: "__name__", Value: "up"}, {Name: "a", Value: "ignored"}, {Name: "b", Value: "lit"}, {Name: "c"}},
		[]int{-1, 1, -1, 0})
	s := series.Series{Template: tm, Values: series.NewValues("", "one")}
	want := []labels.Label{{Name: "__name__", Value: "up"}, {Name: "a", Value: "one"}, {Name: "b", Value: "lit"}}
	if got := s.AppendLabels(nil); !slices.Equal(got, want) {
		t.Fatalf("labels %v, want %v", got, want)
	}
	if s.Name() != "up" || s.Get("a") != "one" || s.Get("c") != "" || s.Get("x") != "" {
		t.Fatalf("Name %q Get(a) %q Get(c) %q", s.Name(), s.Get("a"), s.Get("c"))
	}
}

// TestPreparedConcurrent: endpoints encoding the same templates at once
// share one prepared form (run with -race).
func TestPreparedConcurrent(t *testing.T) {
	ss := randomTemplateSeries(rand.New(rand.NewPCG(5, 6)), 200)
	want, err := toPrompb(ss).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var m marshaler
			if got, err := m.marshalV1(ss); err != nil || !bytes.Equal(got, want) {
				t.Errorf("concurrent marshalV1 differs (err %v)", err)
			}
		})
	}
	wg.Wait()
}

// FuzzMarshalV1Prepared: for any template, values and samples the fuzzer
// derives, the prepared path writes prompb's bytes (1.0) and the bytes of
// the same label sets given as Labels (2.0).
func FuzzMarshalV1Prepared(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint8(5))
	f.Add(uint64(0), uint64(0), uint8(0))
	f.Fuzz(func(t *testing.T, a, b uint64, n uint8) {
		ss := randomTemplateSeries(rand.New(rand.NewPCG(a, b)), int(n))
		want, err := toPrompb(ss).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var m marshaler
		got, err := m.marshalV1(ss)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("marshalV1\n%x\nprompb\n%x", got, want)
		}
		want, err = m.marshalV2(materialized(ss))
		if err != nil {
			t.Fatal(err)
		}
		want = bytes.Clone(want)
		if got, err = m.marshalV2(ss); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("marshalV2 (err %v)\n%x\nlabels\n%x", err, got, want)
		}
	})
}

// BenchmarkMarshalV1 marshals one chunk of 8192 series of 12 labels and
// one sample, as the forwarder hands them over, as a 1.0 request.
func BenchmarkMarshalV1(b *testing.B) {
	ss := benchChunk()
	b.Run("direct", func(b *testing.B) {
		var m marshaler
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.marshalV1(ss); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prepared", func(b *testing.B) { // the forwarder's form
		tss := templated(ss)
		var m marshaler
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.marshalV1(tss); err != nil {
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

// templated returns ss as the forwarder hands them over: 8 sandboxes of
// 1024 series (128 metric names of 8 series), each a template of ss's
// first 8 labels and 4 sandbox values, grouped by metric name as 2.0
// requests are.
func templated(ss []series.Series) []series.Series {
	tss := make([]series.Series, len(ss))
	tmpls := make([]*series.Template, 1024)
	for i := range tmpls {
		ls := slices.Clone(ss[i].Labels)
		ls[0] = labels.Label{Name: labels.MetricName, Value: "metric_" + strconv.Itoa(i/8)}
		ls[1].Value += strconv.Itoa(i)
		tmpls[i] = series.NewTemplate(ls, []int{-1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 2, 3})
	}
	md := &series.Metadata{Family: "f", Type: "gauge", Help: "help text of the family"}
	for i := range tss {
		if i%1024 == 0 {
			v := strconv.Itoa(i)
			tss[i].Values = series.NewValues("sandbox_id_"+v+"_0123456789abcdef", "uid_"+v, "name_"+v, "namespace_"+v)
		} else {
			tss[i].Values = tss[i-1].Values
		}
		tss[i].Template, tss[i].Samples, tss[i].Metadata = tmpls[i%1024], ss[i].Samples, md
	}
	var g grouper
	return slices.Clone(g.group(tss))
}

// BenchmarkMarshalV2 marshals the chunk of BenchmarkMarshalV1 in requests
// of 2000 series as 2.0, the series given as label sets and as templates
// (prepared.go).
func BenchmarkMarshalV2(b *testing.B) {
	ss := benchChunk()
	tss := templated(ss)
	for _, bc := range []struct {
		name string
		ss   []series.Series
	}{{"labels", materialized(tss)}, {"prepared", tss}} {
		b.Run(bc.name, func(b *testing.B) {
			var m marshaler
			b.ReportAllocs()
			for b.Loop() {
				for _, part := range ChunkBySamples(bc.ss, 2000) {
					if _, err := m.marshalV2(part); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
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

// benchChunk is one chunk of 8192 series of 12 labels and one sample, as
// the forwarder hands them over.
func benchChunk() []series.Series {
	ss := make([]series.Series, 8192)
	for i := range ss {
		ls := make([]labels.Label, 12)
		for j := range ls {
			ls[j] = labels.Label{Name: "label_name_" + string(rune('a'+j)), Value: "some_label_value_0123456789"}
		}
		ss[i] = series.Series{Labels: ls, Samples: []series.Sample{{Value: float64(i), Timestamp: 1_700_000_000_000}}}
	}
	return ss
}

// TestMarshalPreparedLongAndUTF8: the prepared 1.0 bytes and the 2.0
// request of template series equal prompb's and the plain labels' for
// values whose length varints take 1, 2 and 3 bytes (127/128, 16383/16384
// bytes, counted with the label message around them), UTF-8 names and
// values, a literal equal to a slot's value, an empty slot value and nil
// values.
func TestMarshalPreparedLongAndUTF8(t *testing.T) {
	var ss []series.Series
	for _, n := range []int{0, 1, 120, 127, 128, 16370, 16383, 16384, 70000} {
		v := strings.Repeat("é", n/2) + strings.Repeat("x", n%2)
		tm := series.NewTemplate([]labels.Label{{Name: "__name__", Value: "m"}, {Name: "cri_name", Value: v}, {Name: "nämé", Value: v}, {Name: "sandbox_id"}, {Name: "z"}},
			[]int{-1, 1, -1, 0, 2})
		for _, vals := range []*series.Values{series.NewValues("sb", v, ""), series.NewValues(v, "", v), nil} {
			ss = append(ss, series.Series{Template: tm, Values: vals, Samples: []series.Sample{{Value: 1, Timestamp: 2}}})
		}
	}
	want, err := toPrompb(ss).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m marshaler
	if got, err := m.marshalV1(ss); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("marshalV1 differs from prompb (err %v)", err)
	}
	want, err = m.marshalV2(materialized(ss))
	if err != nil {
		t.Fatal(err)
	}
	want = bytes.Clone(want)
	if got, err := m.marshalV2(ss); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("marshalV2 of templates differs from labels (err %v)", err)
	}
}

// TestEncodeTemplatesLikeLabels: the Encoder turns series given as
// templates and values into the blocks it makes of the same label sets
// given as Labels, in both formats, with write_relabel_configs that
// rewrite, drop and keep series (a relabelled series no longer matches its
// template's prepared bytes) and without rules.
func TestEncodeTemplatesLikeLabels(t *testing.T) {
	rewrite := relabel.DefaultRelabelConfig
	rewrite.SourceLabels, rewrite.TargetLabel, rewrite.Replacement = model.LabelNames{"b"}, "a", "from-b-$1"
	drop := relabel.DefaultRelabelConfig
	drop.Action, drop.SourceLabels, drop.Regex = relabel.Drop, model.LabelNames{"a"}, relabel.MustNewRegexp("from-b-") // b absent
	for _, rc := range []*relabel.Config{&rewrite, &drop} {
		if err := rc.Validate(model.UTF8Validation); err != nil {
			t.Fatal(err)
		}
	}
	ruleSets := [][]*relabel.Config{nil, {&rewrite}, {&rewrite, &drop}}
	comp := testComp(t)
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range 100 {
		ss := randomTemplateSeries(rng, rng.IntN(40))
		for r, rules := range ruleSets {
			for _, f := range []Format{FormatV1, FormatV2} {
				e, plain := NewEncoder(7, rules, comp), NewEncoder(7, rules, comp)
				got, gst, err := e.Encode(ss, f)
				if err != nil {
					t.Fatal(err)
				}
				want, wst, err := plain.Encode(materialized(ss), f)
				if err != nil {
					t.Fatal(err)
				}
				if gst != wst || len(got) != len(want) {
					t.Fatalf("case %d rules %d %v: stats %+v blocks %d, labels: %+v blocks %d", i, r, f, gst, len(got), wst, len(want))
				}
				for j := range got {
					if !bytes.Equal(got[j].Data, want[j].Data) || got[j].Samples != want[j].Samples {
						t.Fatalf("case %d rules %d %v: block %d differs", i, r, f, j)
					}
				}
			}
		}
	}
}
