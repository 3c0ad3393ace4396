package receiver

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Read returns the raw samples stored for every series whose name matches
// the regular expression nameRe within [start, end] (ms precision), through
// the receiver's remote read API (Prometheus: /api/v1/read; Mimir:
// /prometheus/api/v1/read; remote read 1.0, SAMPLES response). Unlike
// Export, whose queries go through PromQL, it returns staleness markers too
// (value.IsStaleNaN on Values[i]): a remote read hands out what the
// storage holds, so a test can count what the receiver kept sample for
// sample. Thanos and VictoriaMetrics answer an error: this harness does not
// start their remote read.
func (r *Receiver) Read(ctx context.Context, nameRe string, start, end time.Time) ([]Series, error) {
	var path string
	switch {
	case r.Kind.isPrometheus():
		path = "/api/v1/read"
	case r.Kind == Mimir:
		path = "/prometheus/api/v1/read"
	default:
		return nil, fmt.Errorf("%s: no remote read in this harness", r.Kind)
	}
	return r.read(ctx, path, nameRe, start, end)
}

// HasRead reports whether Read works for receivers of kind k.
func (k Kind) HasRead() bool { return k.isPrometheus() || k == Mimir }

func (r *Receiver) read(ctx context.Context, path, nameRe string, start, end time.Time) ([]Series, error) {
	rr := &prompb.ReadRequest{Queries: []*prompb.Query{{
		StartTimestampMs: start.UnixMilli(),
		EndTimestampMs:   end.UnixMilli(),
		Matchers:         []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: nameRe}},
	}}}
	raw, err := rr.Marshal()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.Addr+path, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	body, err := r.do(req, path)
	if err != nil {
		return nil, err
	}
	dec, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, fmt.Errorf("remote read answer: %w", err)
	}
	var rresp prompb.ReadResponse
	if err := rresp.Unmarshal(dec); err != nil {
		return nil, fmt.Errorf("remote read answer: %w", err)
	}
	var out []Series
	for _, qr := range rresp.Results {
		for _, ts := range qr.Timeseries {
			s := Series{Labels: make(map[string]string, len(ts.Labels))}
			for _, l := range ts.Labels {
				s.Labels[l.Name] = l.Value
			}
			for _, smp := range ts.Samples {
				s.Timestamps = append(s.Timestamps, smp.Timestamp)
				s.Values = append(s.Values, smp.Value)
			}
			out = append(out, s)
		}
	}
	return out, nil
}
