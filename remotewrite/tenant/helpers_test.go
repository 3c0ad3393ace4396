package tenant

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// gotRequest is one request the test receiver decoded.
type gotRequest struct {
	header http.Header
	series []series.Series
	code   int
}

// receiver is a remote write 1.0 receiver (the format tenant queues send
// by default) on a real HTTP server: it decodes snappy + protobuf and
// answers what decide says (204 without it). Only requests answered 2xx
// count as stored.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	// decide gets the request and its decoded series; set before start.
	decide func(r *http.Request, ss []series.Series) int
	// answer, when set, is the body of every non-2xx answer.
	answer string

	mu  sync.Mutex
	all []gotRequest
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.handle))
	return rc
}

func (rc *receiver) start() *receiver {
	rc.srv.Start()
	rc.t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/api/v1/write" }

func (rc *receiver) handle(w http.ResponseWriter, r *http.Request) {
	ss, err := decodeV1(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	}
	code := http.StatusNoContent
	if rc.decide != nil {
		code = rc.decide(r, ss)
	}
	rc.mu.Lock()
	rc.all = append(rc.all, gotRequest{header: r.Header.Clone(), series: ss, code: code})
	rc.mu.Unlock()
	if code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "3600")
	}
	w.WriteHeader(code)
	if code/100 != 2 {
		body := rc.answer
		if body == "" {
			body = fmt.Sprintf("answer %d", code)
		}
		_, _ = io.WriteString(w, body)
	}
}

func decodeV1(body io.Reader) ([]series.Series, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	pb, err := snappy.Decode(nil, raw)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(pb); err != nil {
		return nil, fmt.Errorf("not a 1.0 request: %w", err)
	}
	out := make([]series.Series, 0, len(wr.Timeseries))
	for _, ts := range wr.Timeseries {
		s := series.Series{}
		for _, l := range ts.Labels {
			s.Labels = append(s.Labels, labels.Label{Name: l.Name, Value: l.Value})
		}
		for _, smp := range ts.Samples {
			s.Samples = append(s.Samples, series.Sample{Timestamp: smp.Timestamp, Value: smp.Value})
		}
		out = append(out, s)
	}
	return out, nil
}

// requests returns a copy of every request so far.
func (rc *receiver) requests() []gotRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]gotRequest(nil), rc.all...)
}

// stored returns, per series (labels rendered), the samples of requests
// answered 2xx, in arrival order.
func (rc *receiver) stored() map[string][]series.Sample {
	out := map[string][]series.Sample{}
	for _, g := range rc.requests() {
		if g.code/100 != 2 {
			continue
		}
		for _, ts := range g.series {
			var k strings.Builder
			for _, l := range ts.Labels {
				k.WriteString(l.Name + "=" + l.Value + ",")
			}
			out[k.String()] = append(out[k.String()], ts.Samples...)
		}
	}
	return out
}

// hasIdx reports whether ss holds a series labelled idx=<idx>.
func hasIdx(ss []series.Series, idx string) bool {
	for _, ts := range ss {
		if labelOf(ts, "idx") == idx {
			return true
		}
	}
	return false
}

func labelOf(ts series.Series, name string) string {
	for _, l := range ts.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// mkSeries builds a Series with a __name__ and extra label pairs.
func mkSeries(name string, samples []series.Sample, kv ...string) series.Series {
	ls := []labels.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, labels.Label{Name: kv[i], Value: kv[i+1]})
	}
	return series.Series{Labels: ls, Samples: samples}
}
