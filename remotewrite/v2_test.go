package remotewrite

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// TestV2FallsBackToV1 covers the three answers that make a 2.0 endpoint
// send 1.0 instead (remote write 2.0 specification, "Unsupported Request
// Content" and "Required Written Response Headers"): 415; 2xx without any
// Written header (a 1.x receiver that decoded the 2.0 body as an empty 1.0
// request, as Prometheus 2.x and VictoriaMetrics do: nothing was written);
// 400 before any 2.0 request was written. Every sample arrives once, as
// 1.0, the queued 2.0 blocks transcoded, later rounds written as 1.0, and
// metadata requests (1.0 only) resume.
// Long for its three receivers and the checks each must pass.
func TestV2FallsBackToV1(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(rc *receiver)
	}{
		{"415", func(rc *receiver) { rc.V1Only = true }},
		{"2xx without Written headers", func(rc *receiver) {
			rc.NoWritten = true
			rc.Decide = func(_ int, r *http.Request, wr *wreq) (int, map[string]string) {
				if wr.V2 {
					// What a 1.x receiver reads from a 2.0 body: nothing.
					wr.Timeseries = nil
				}
				return http.StatusNoContent, nil
			}
		}},
		{"400 before any 2.0 write", func(rc *receiver) {
			rc.Decide = func(_ int, r *http.Request, wr *wreq) (int, map[string]string) {
				if wr.V2 {
					wr.Timeseries = nil
					return http.StatusBadRequest, nil
				}
				return http.StatusNoContent, nil
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			tc.setup(rc)
			rc.Start()
			cfg := config.Config{URL: rc.URL(), ProtobufMessage: codec.MessageV2}
			cfg.QueueConfig.MaxSamplesPerSend = 8
			cfg.MetadataConfig.SendInterval = model.Duration(time.Hour)
			q, reg := newTestQueue(t, cfg, newMemQueue())
			for r := 1; r <= 3; r++ { // queued as 2.0 before anything is sent
				require.NoError(t, q.Append(context.Background(), v2Round(r, 6)))
			}
			q.AppendMetadata([]series.Metadata{{Family: "kata_c", Type: model.MetricTypeCounter, Help: "A counter."}})
			stop := runQueue(t, q)
			require.Eventually(t, func() bool { return gathered(t, reg, "kata_monitor_remote_write_samples_sent_total") == 36 }, 10*time.Second, 5*time.Millisecond)
			require.NoError(t, q.Append(context.Background(), v2Round(4, 6)))
			require.Eventually(t, func() bool {
				return gathered(t, reg, "kata_monitor_remote_write_samples_sent_total") == 48 && gathered(t, reg, "kata_monitor_remote_write_metadata_sent_total") == 1
			}, 10*time.Second, 5*time.Millisecond)
			require.Equal(t, 1.0, gathered(t, reg, "kata_monitor_remote_write_protocol_fallbacks_total"))
			require.Zero(t, gathered(t, reg, "kata_monitor_remote_write_samples_dropped_total", "reason", "refused"), "nothing lost")
			require.NoError(t, stop())
			requireInOrder(t, rc.Stored(), 12, 4)
			v2 := 0
			for _, r := range rc.Requests() {
				if r.Header.Get("Content-Type") == codec.ContentTypeV2 {
					v2++
					continue
				}
				require.Equal(t, "0.1.0", r.Header.Get("X-Prometheus-Remote-Write-Version"))
			}
			// The first round's blocks (2 of 8 samples at most) go out
			// concurrently as 2.0; everything after is 1.0.
			require.GreaterOrEqual(t, v2, 1)
			require.LessOrEqual(t, v2, 2, "only the first group's blocks are tried as 2.0")
			require.Equal(t, codec.MessageV1+"+snappy", q.currentFormat().String())
		})
	}
}

func TestNewConfigKeysValidated(t *testing.T) {
	for _, tc := range []struct {
		cfg  config.Config
		want string
	}{
		{config.Config{URL: "http://x/w", ProtobufMessage: "prometheus.WriteRequestV3"}, "protobuf_message"},
		{config.Config{URL: "http://x/w", Compression: "gzip"}, "compression"},
		{config.Config{URL: "http://x/w", QueueConfig: config.QueueConfig{MaxBytesPerSecond: -1}}, "queue_config.max_bytes_per_second"},
		{config.Config{URL: "http://x/w", ProtobufMessage: codec.MessageV2, Headers: map[string]string{"user-agent": "x"}}, "User-Agent"},
	} {
		tc.cfg.ApplyDefaults()
		require.ErrorContains(t, tc.cfg.Validate(), tc.want)
	}
	ok := config.Config{URL: "http://x/w", Headers: map[string]string{"User-Agent": "x"}}
	ok.ApplyDefaults()
	require.NoError(t, ok.Validate(), "User-Agent may still be set with 1.0")
	require.Equal(t, codec.MessageV1, ok.ProtobufMessage)
	require.Equal(t, codec.CompressionSnappy, ok.Compression)
}
