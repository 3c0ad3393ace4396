package faultproxy

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestLedger: per tenant, samples of requests answered 2xx are acknowledged
// (each time: Count), those the receiver answered 4xx or whose answer was
// lost are NotAcked, injected 5xx and hangups are in neither, and a
// staleness marker keeps its bits.
func TestLedger(t *testing.T) {
	var code atomic.Int64
	var reached atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(recv.Close)
	p, err := New(recv.URL + "/write")
	require.NoError(t, err)
	p.RecordAcked("X-Scope-OrgID")
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)

	stale := math.Float64frombits(value.StaleNaN)
	send := func(tenant string, ts int64, v float64) int {
		t.Helper()
		req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "a", Value: "1"}},
			Samples: []prompb.Sample{{Timestamp: ts, Value: v}},
		}}}
		raw, err := req.Marshal()
		require.NoError(t, err)
		hreq, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(snappy.Encode(nil, raw)))
		require.NoError(t, err)
		if tenant != "" {
			hreq.Header.Set("X-Scope-OrgID", tenant)
		}
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			return 0 // a hangup
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	key := Sample{Series: SeriesKey(map[string]string{"__name__": "m", "a": "1"}), Timestamp: 0}
	at := func(ts int64) Sample { k := key; k.Timestamp = ts; return k }

	code.Store(http.StatusNoContent)
	require.Equal(t, http.StatusNoContent, send("a", 1, 5))
	require.Equal(t, http.StatusNoContent, send("a", 1, 5)) // delivered twice
	require.Equal(t, http.StatusNoContent, send("a", 2, stale))
	require.Equal(t, http.StatusNoContent, send("", 1, 7))
	code.Store(http.StatusBadRequest)
	require.Equal(t, http.StatusBadRequest, send("a", 3, 1))
	code.Store(http.StatusNoContent)
	p.SetFaults(func(n int64, _ *prompb.WriteRequest) Fault {
		switch n {
		case 6:
			return Fault{LoseAnswer: true}
		case 7:
			return Fault{Status: http.StatusServiceUnavailable}
		case 8:
			return Fault{Hangup: true}
		}
		return Fault{Status: http.StatusNoContent} // acknowledged, never forwarded
	})
	require.Equal(t, 0, send("a", 4, 1))
	require.Equal(t, http.StatusServiceUnavailable, send("a", 5, 1))
	require.Equal(t, 0, send("a", 6, 1))
	require.Equal(t, http.StatusNoContent, send("a", 7, 1))
	require.EqualValues(t, 6, reached.Load(), "requests 1-6 reached the receiver")

	a := p.Acked("a")
	require.Equal(t, 4, a.Count)
	require.Equal(t, map[Sample]uint64{at(1): math.Float64bits(5), at(2): value.StaleNaN, at(7): math.Float64bits(1)}, a.Values)
	require.Equal(t, map[Sample]uint64{at(3): math.Float64bits(1), at(4): math.Float64bits(1)}, a.NotAcked)
	none := p.Acked("")
	require.Equal(t, 1, none.Count)
	require.Equal(t, map[Sample]uint64{at(1): math.Float64bits(7)}, none.Values)
	require.Empty(t, p.Acked("b").Values)
	st := p.Stats()
	require.EqualValues(t, 4, st.ForwardedSamples, "the injected 204 was never forwarded")
}
