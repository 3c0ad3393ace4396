package send

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// rawV2 is one 2.0 request as sent, decoded with the generated types only.
func rawV2(t *testing.T, body []byte) writev2.Request {
	t.Helper()
	raw, err := snappy.Decode(nil, body)
	require.NoError(t, err)
	var req writev2.Request
	require.NoError(t, req.Unmarshal(raw))
	return req
}

// TestV2RequestFollowsTheSpecification checks every request of a 2.0
// endpoint against the sender requirements of the remote write 2.0
// specification that apply to float samples (docs/remote-write-2.md lists
// them): the reserved headers, snappy block format, a symbols table that
// starts with "" and holds each string once, valid references, labels
// sorted with no empty or repeated name and no empty value, samples in
// every series and in timestamp order, the family's type, help and unit
// with every series.
// Long because it checks the requirements one after the other.
func TestV2RequestFollowsTheSpecification(t *testing.T) {
	var bodies [][]byte
	rc := newReceiver(t, nil)
	rc.Respond = func(int, *http.Request) (int, map[string]string) { return http.StatusNoContent, nil }
	rc.Tap = func(body []byte) { bodies = append(bodies, body) }
	rc.Start()
	cfg := config.Config{URL: rc.URL(), ProtobufMessage: codec.MessageV2}
	cfg.QueueConfig.MaxSamplesPerSend = 7 // several requests per round
	q, _ := newTestQueue(t, cfg, newMemQueue())
	stop := runQueue(t, q)
	for r := 1; r <= 3; r++ {
		require.NoError(t, q.Append(context.Background(), v2Round(r, 10)))
	}
	require.Eventually(t, func() bool { return testutil.ToFloat64(q.metrics.sent) == 60 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop())

	reqs := rc.Requests()
	require.NotEmpty(t, reqs)
	for _, r := range reqs {
		require.Equal(t, "snappy", r.Header.Get("Content-Encoding"))
		require.Equal(t, "application/x-protobuf;proto=io.prometheus.write.v2.Request", r.Header.Get("Content-Type"))
		require.Equal(t, "2.0.0", r.Header.Get("X-Prometheus-Remote-Write-Version"))
		require.Equal(t, "kata-monitor/test", r.Header.Get("User-Agent"))
	}
	rc.Mu.Lock()
	bodies = slices.Clone(bodies)
	rc.Mu.Unlock()
	require.Len(t, bodies, len(reqs))
	for _, body := range bodies {
		req := rawV2(t, body)
		require.NotEmpty(t, req.Symbols)
		require.Equal(t, "", req.Symbols[0], "symbols start with the empty string")
		seen := map[string]bool{}
		for _, s := range req.Symbols {
			require.False(t, seen[s], "symbol %q twice", s)
			seen[s] = true
		}
		ref := func(i uint32) string {
			require.Less(t, int(i), len(req.Symbols), "reference inside the table")
			return req.Symbols[i]
		}
		for _, ts := range req.Timeseries {
			require.NotEmpty(t, ts.LabelsRefs)
			require.Zero(t, len(ts.LabelsRefs)%2)
			var names []string
			for i := 0; i < len(ts.LabelsRefs); i += 2 {
				n, v := ref(ts.LabelsRefs[i]), ref(ts.LabelsRefs[i+1])
				require.NotEmpty(t, n)
				require.NotEmpty(t, v)
				names = append(names, n)
			}
			require.True(t, slices.IsSorted(names), "labels sorted: %v", names)
			require.Len(t, slices.Compact(slices.Clone(names)), len(names), "no repeated label name")
			require.Equal(t, "__name__", names[0])
			require.NotEmpty(t, ts.Samples)
			require.Empty(t, ts.Histograms)
			require.True(t, slices.IsSortedFunc(ts.Samples, func(a, b writev2.Sample) int { return int(a.Timestamp - b.Timestamp) }))
			md, err := ts.ToMetadata(req.Symbols)
			require.NoError(t, err)
			switch name := ref(ts.LabelsRefs[1]); name {
			case "kata_c_total":
				require.Equal(t, model.MetricTypeCounter, md.Type)
				require.Equal(t, "A counter.", md.Help)
				require.Empty(t, md.Unit)
			case "kata_h_seconds_bucket":
				require.Equal(t, model.MetricTypeHistogram, md.Type)
				require.Equal(t, "A histogram.", md.Help)
				require.Equal(t, "seconds", md.Unit)
			default:
				t.Fatalf("unexpected series %s", name)
			}
		}
	}
	requireInOrder(t, rc.Stored(), 20, 3)
	require.Zero(t, testutil.ToFloat64(q.metrics.fallbacks))
}

// TestV2PartialWriteCounted: a receiver that answers 2xx but says, in
// X-Prometheus-Remote-Write-Samples-Written, that it wrote fewer samples
// than sent: the difference is counted as dropped (receiver_partial_write)
// and logged, never silent; what it wrote counts as sent.
func TestV2PartialWriteCounted(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) (int, map[string]string) {
		return http.StatusNoContent, map[string]string{"X-Prometheus-Remote-Write-Samples-Written": "3"}
	}).Start()
	q, _ := newTestQueue(t, config.Config{URL: rc.URL(), ProtobufMessage: codec.MessageV2}, newMemQueue())
	stop := runQueue(t, q)
	require.NoError(t, q.Append(context.Background(), v2Round(1, 5))) // 10 samples, one request
	require.Eventually(t, func() bool { return testutil.ToFloat64(q.metrics.droppedPartial) > 0 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop())
	require.Equal(t, 7.0, testutil.ToFloat64(q.metrics.droppedPartial))
	require.Equal(t, 3.0, testutil.ToFloat64(q.metrics.sent))
	require.Zero(t, testutil.ToFloat64(q.metrics.fallbacks), "headers present: a 2.0 receiver")
}

// TestV2SplitOnRefusal: once 2.0 works, a 400 is a refusal of data as
// with 1.0: the 2.0 request is split until only the refused series is
// dropped, every part still sent as 2.0 with its metadata.
func TestV2SplitOnRefusal(t *testing.T) {
	rc := newReceiver(t, nil)
	rc.Decide = func(_ int, _ *http.Request, wr *wreq) (int, map[string]string) {
		for _, s := range wr.Timeseries {
			if labelKey(s.Labels) == "__name__=kata_c_total,idx=002" && s.Samples[0].Timestamp == 2000 {
				return http.StatusBadRequest, map[string]string{"X-Prometheus-Remote-Write-Samples-Written": "0"}
			}
		}
		return http.StatusNoContent, nil
	}
	rc.Start()
	q, _ := newTestQueue(t, config.Config{URL: rc.URL(), ProtobufMessage: codec.MessageV2}, newMemQueue())
	stop := runQueue(t, q)
	require.NoError(t, q.Append(context.Background(), v2Round(1, 8)))
	require.Eventually(t, func() bool { return testutil.ToFloat64(q.metrics.sent) == 16 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, q.Append(context.Background(), v2Round(2, 8)))
	require.Eventually(t, func() bool { return testutil.ToFloat64(q.metrics.sent) == 31 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop())
	require.Equal(t, 1.0, testutil.ToFloat64(q.metrics.droppedRefused))
	require.Zero(t, testutil.ToFloat64(q.metrics.fallbacks))
	for _, r := range rc.Requests() {
		require.Equal(t, codec.ContentTypeV2, r.Header.Get("Content-Type"), "parts of a split stay 2.0")
		for _, s := range r.Req.Timeseries {
			require.NotNil(t, s.Metadata)
			require.NotEqual(t, model.MetricTypeUnknown, s.Metadata.Type, "metadata kept through the split")
		}
	}
}

// TestZstd: compression zstd sends Content-Encoding zstd bodies (decoded
// here by klauspost's own decoder) for both messages, and they are smaller
// than snappy's.
func TestZstd(t *testing.T) {
	sizes := map[string]int{}
	for _, msg := range []string{codec.MessageV1, codec.MessageV2} {
		for _, comp := range []string{codec.CompressionSnappy, codec.CompressionZstd} {
			rc := newReceiver(t, func(int, *http.Request) (int, map[string]string) { return http.StatusNoContent, nil }).Start()
			q, _ := newTestQueue(t, config.Config{URL: rc.URL(), ProtobufMessage: msg, Compression: comp}, newMemQueue())
			stop := runQueue(t, q)
			require.NoError(t, q.Append(context.Background(), v2Round(1, 200)))
			require.Eventually(t, func() bool { return testutil.ToFloat64(q.metrics.sent) == 400 }, 10*time.Second, 5*time.Millisecond)
			require.NoError(t, stop())
			for _, r := range rc.Requests() {
				require.Equal(t, comp, r.Header.Get("Content-Encoding"))
			}
			require.Len(t, rc.Stored(), 400)
			sizes[msg+"+"+comp] = int(testutil.ToFloat64(q.metrics.bytesSent))
		}
	}
	t.Logf("bytes for 400 samples: %v", sizes)
	require.Less(t, sizes[codec.MessageV1+"+zstd"], sizes[codec.MessageV1+"+snappy"])
	require.Less(t, sizes[codec.MessageV2+"+zstd"], sizes[codec.MessageV2+"+snappy"])
}
