package remotewrite

import (
	"net/http"
	"testing"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestMetadataSent(t *testing.T) {
	tests := []struct {
		name       string
		code       int
		wantSent   float64
		wantFailed float64
	}{
		{name: "accepted", code: http.StatusNoContent, wantSent: 3},
		{name: "refused", code: http.StatusBadRequest, wantFailed: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(int, *http.Request) (int, map[string]string) { return tt.code, nil }).Start()
			cfg := config.Config{URL: rc.URL()}
			cfg.QueueConfig.MaxSamplesPerSend = 2 // metadata goes in 2 requests
			cfg.MetadataConfig.SendInterval = model.Duration(time.Hour)
			q, reg := newTestQueue(t, cfg, newMemQueue())
			md := []series.Metadata{
				{Type: model.MetricTypeCounter, Family: "a_total", Help: "A."},
				{Type: model.MetricTypeGauge, Family: "b", Help: "B."},
				{Type: model.MetricTypeHistogram, Family: "c", Help: "C.", Unit: "seconds"},
			}
			stop := runQueue(t, q)
			q.AppendMetadata(md)
			md[0].Help = "mutated by caller" // not retained
			require.Eventually(t, func() bool {
				return gathered(t, reg, "kata_monitor_remote_write_metadata_sent_total")+gathered(t, reg, "kata_monitor_remote_write_metadata_failed_total") == 3
			}, 10*time.Second, 5*time.Millisecond)
			require.Equal(t, tt.wantSent, gathered(t, reg, "kata_monitor_remote_write_metadata_sent_total"))
			require.Equal(t, tt.wantFailed, gathered(t, reg, "kata_monitor_remote_write_metadata_failed_total"))
			require.NoError(t, stop())
			var got []series.Metadata
			for _, r := range rc.Requests() {
				require.Empty(t, r.Req.Timeseries)
				got = append(got, r.Req.Metadata...)
			}
			require.Len(t, got, 3)
			require.Equal(t, "A.", got[0].Help)
			require.Equal(t, "seconds", got[2].Unit)
		})
	}
}
