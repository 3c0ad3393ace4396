package receiver

import (
	"bytes"
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestRoundTrip proves the harness itself: a sample written with remote write
// is read back with its labels, value and timestamp from every receiver;
// the multi-tenant ones (Mimir, Thanos) write and read as tenant "rt".
func TestRoundTrip(t *testing.T) {
	for _, kind := range []Kind{VictoriaMetrics, Prometheus, VictoriaMetrics151, Prometheus3, Mimir, Thanos} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel() // VictoriaMetrics takes ~10 s to show a sample
			ctx := context.Background()
			r, err := Start(ctx, kind, t.TempDir(), nil)
			require.NoError(t, err)
			t.Cleanup(r.Stop)

			now := time.Now().Truncate(time.Millisecond)
			req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
				Labels:  []prompb.Label{{Name: "__name__", Value: "rt_test"}, {Name: "job", Value: "x"}},
				Samples: []prompb.Sample{{Value: 42, Timestamp: now.UnixMilli()}},
			}}}
			raw, err := req.Marshal()
			require.NoError(t, err)
			hreq, err := http.NewRequest(http.MethodPost, r.WriteURL(), bytes.NewReader(snappy.Encode(nil, raw)))
			require.NoError(t, err)
			hreq.Header.Set("Content-Encoding", "snappy")
			hreq.Header.Set("Content-Type", "application/x-protobuf")
			hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
			q := r
			if h := kind.TenantHeader(); h != "" {
				hreq.Header.Set(h, "rt")
				q = r.ForTenant("rt")
			}
			resp, err := http.DefaultClient.Do(hreq)
			require.NoError(t, err)
			resp.Body.Close()
			require.Less(t, resp.StatusCode, 300)

			var got []Series
			require.Eventually(t, func() bool {
				got, err = q.Export(ctx, `rt_test`, now.Add(-time.Minute), now.Add(time.Second))
				return err == nil && len(got) == 1
			}, 60*time.Second, 200*time.Millisecond, "err=%v", err)
			require.Equal(t, "x", got[0].Labels["job"])
			require.Equal(t, []float64{42}, got[0].Values)
			require.Equal(t, []int64{now.UnixMilli()}, got[0].Timestamps)
		})
	}
}

// TestStartRetriesTakenPort: a port taken by another process between its
// choice and the receiver's start (here: the first port chosen, listened
// on by the test) makes the start fail with "address already in use"; the
// harness starts it again on new ports instead of failing the test.
func TestStartRetriesTakenPort(t *testing.T) {
	var taken []int
	choosePorts = func(n int) (int, error) {
		p, err := freePorts(n)
		if err == nil && len(taken) == 0 {
			// Bound, not listening: as an outgoing connection's local
			// port, it refuses connections and blocks the bind.
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
			require.NoError(t, err)
			t.Cleanup(func() { syscall.Close(fd) })
			require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}}))
		}
		taken = append(taken, p)
		return p, err
	}
	t.Cleanup(func() { choosePorts = freePorts })
	r, err := Start(context.Background(), Prometheus, t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(r.Stop)
	require.Len(t, taken, 2, "one start on the taken port, one on new ports")
	require.Equal(t, taken[1], r.port)
	resp, err := http.Get(r.BaseURL() + "/-/ready")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
