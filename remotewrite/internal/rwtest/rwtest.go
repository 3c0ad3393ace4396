// Package rwtest holds test helpers shared by the remote write packages'
// tests: series builders and an independent request decoder. Only tests
// import it.
package rwtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/golang/snappy"
	zstdlib "github.com/klauspost/compress/zstd"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// Series builds a Series with a __name__ and extra label pairs kv.
func Series(name string, samples []series.Sample, kv ...string) series.Series {
	ls := []labels.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, labels.Label{Name: kv[i], Value: kv[i+1]})
	}
	return series.Series{Labels: ls, Samples: samples}
}

// Sample is a sample at ts (ms) of value v.
func Sample(ts int64, v float64) series.Sample { return series.Sample{Timestamp: ts, Value: v} }

// V2Round is one round of n series of a counter family and n of a
// classic histogram family's buckets, every series with its family's
// metadata, timestamps r*1000.
func V2Round(r, n int) []series.Series {
	counter := &series.Metadata{Family: "kata_c", Type: model.MetricTypeCounter, Help: "A counter."}
	hist := &series.Metadata{Family: "kata_h_seconds", Type: model.MetricTypeHistogram, Help: "A histogram.", Unit: "seconds"}
	var out []series.Series
	for i := range n {
		s := Series("kata_c_total", []series.Sample{Sample(int64(r)*1000, float64(r))}, "idx", fmt.Sprintf("%03d", i))
		s.Metadata = counter
		out = append(out, s)
		b := Series("kata_h_seconds_bucket", []series.Sample{Sample(int64(r)*1000, float64(r))}, "idx", fmt.Sprintf("%03d", i), "le", "+Inf")
		b.Metadata = hist
		out = append(out, b)
	}
	return out
}

// BenchRound builds one realistic round: sandboxes x seriesPer series of
// ~8 labels with one sample each.
func BenchRound(sandboxes, seriesPer int) []series.Series {
	out := make([]series.Series, 0, sandboxes*seriesPer)
	for sb := range sandboxes {
		id := fmt.Sprintf("%064x", sb*7919)
		for s := range seriesPer {
			out = append(out, series.Series{
				Labels: []labels.Label{
					{Name: "__name__", Value: fmt.Sprintf("kata_hypervisor_netdev_%d", s%75)},
					{Name: "cri_name", Value: fmt.Sprintf("pod-%d", sb)},
					{Name: "cri_namespace", Value: "default"},
					{Name: "cri_uid", Value: fmt.Sprintf("4c1d8a6e-0000-4000-8000-%012d", sb)},
					{Name: "interface", Value: fmt.Sprintf("eth%d", s%3)},
					{Name: "item", Value: fmt.Sprintf("item_%d", s)},
					{Name: "node", Value: "worker-1"},
					{Name: "sandbox_id", Value: id},
				},
				Samples: []series.Sample{{Timestamp: 1_700_000_000_000, Value: float64(s * sb)}},
			})
		}
	}
	return out
}

// Request is a decoded request of either message, in neutral types.
type Request struct {
	Timeseries []series.Series
	Metadata   []series.Metadata // 1.0 metadata requests
	V2         bool
	Symbols    []string // 2.0
}

// Decode decodes a request body (remote write 2.0 when v2, zstd when
// zstd, else 1.0 and snappy) independently of package codec: with the
// generated types of both messages and the compressions' own libraries.
func Decode(body []byte, v2, zstd bool) (Request, error) {
	var raw []byte
	var err error
	if zstd {
		dec, derr := zstdlib.NewReader(nil)
		if derr != nil {
			return Request{}, derr
		}
		defer dec.Close()
		raw, err = dec.DecodeAll(body, nil)
	} else {
		raw, err = snappy.Decode(nil, body)
	}
	if err != nil {
		return Request{}, fmt.Errorf("decompress: %w", err)
	}
	if !v2 {
		return decodeV1(raw)
	}
	return decodeV2(raw)
}

func decodeV1(raw []byte) (Request, error) {
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return Request{}, fmt.Errorf("proto: %w", err)
	}
	var out Request
	for _, ts := range req.Timeseries {
		s := series.Series{}
		for _, l := range ts.Labels {
			s.Labels = append(s.Labels, labels.Label{Name: l.Name, Value: l.Value})
		}
		for _, x := range ts.Samples {
			s.Samples = append(s.Samples, series.Sample{Value: x.Value, Timestamp: x.Timestamp})
		}
		out.Timeseries = append(out.Timeseries, s)
	}
	for _, m := range req.Metadata {
		out.Metadata = append(out.Metadata, series.Metadata{Family: m.MetricFamilyName, Type: metadataTypeV1(m.Type), Help: m.Help, Unit: m.Unit})
	}
	return out, nil
}

func decodeV2(raw []byte) (Request, error) {
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil {
		return Request{}, fmt.Errorf("proto: %w", err)
	}
	out := Request{V2: true, Symbols: req.Symbols}
	var sb labels.ScratchBuilder
	for _, ts := range req.Timeseries {
		ls, err := ts.ToLabels(&sb, req.Symbols)
		if err != nil {
			return Request{}, err
		}
		md, err := ts.ToMetadata(req.Symbols)
		if err != nil {
			return Request{}, err
		}
		s := series.Series{Metadata: &series.Metadata{Type: md.Type, Help: md.Help, Unit: md.Unit}}
		ls.Range(func(l labels.Label) { s.Labels = append(s.Labels, l) })
		for _, x := range ts.Samples {
			s.Samples = append(s.Samples, series.Sample{Value: x.Value, Timestamp: x.Timestamp})
		}
		out.Timeseries = append(out.Timeseries, s)
	}
	return out, nil
}

// metadataTypeV1 is the inverse of prompb.FromMetadataType, which maps
// model's lower-case names onto the enum's upper-case ones.
func metadataTypeV1(t prompb.MetricMetadata_MetricType) model.MetricType {
	return model.MetricType(strings.ToLower(t.String()))
}

// LabelKey renders a label set as name=value pairs joined by commas.
func LabelKey(ls []labels.Label) string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name + "=" + l.Value)
	}
	return b.String()
}

// DecodeStrict decodes doc into v as package configs decodes the config
// file: an unknown key is an error naming it and its line.
func DecodeStrict(doc string, v any) error {
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// Round builds round r of nSeries series named kata_metric (label idx),
// one sample each at ts r*1000 of value r.
func Round(r, nSeries int) []series.Series {
	out := make([]series.Series, nSeries)
	for i := range out {
		out[i] = Series("kata_metric", []series.Sample{Sample(int64(r)*1000, float64(r))}, "idx", fmt.Sprintf("%03d", i))
	}
	return out
}

// RequireInOrder checks that nSeries series got exactly rounds samples
// each, with strictly increasing timestamps.
func RequireInOrder(t *testing.T, got map[string][]series.Sample, nSeries, rounds int) {
	t.Helper()
	require.Len(t, got, nSeries)
	for k, ss := range got {
		require.Len(t, ss, rounds, "series %s", k)
		for i := 1; i < len(ss); i++ {
			require.Greater(t, ss[i].Timestamp, ss[i-1].Timestamp, "series %s sample %d", k, i)
		}
	}
}

// Run runs run (a Run method) in the background until the returned stop
// cancels its context; stop returns run's error, and the test's cleanup
// calls it too.
func Run(t *testing.T, run func(context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// Logger is a debug-level text logger writing to t's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
