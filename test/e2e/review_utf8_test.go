package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/test/receiver"
)

// TestReviewUTF8NamesPushed: what docs/upgrading.md says push does with a
// shim's UTF-8 metric and label names, against the real receivers: both
// Prometheus 2.42 and VictoriaMetrics 1.79 take and store them as sent
// (Prometheus 2.42 does not refuse them with 400).
func TestReviewUTF8NamesPushed(t *testing.T) {
	t.Parallel()
	for _, kind := range []receiver.Kind{receiver.Prometheus, receiver.VictoriaMetrics} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			rcv := startReceiver(t, kind)
			q, reg := runQueue(t, rcv.WriteURL(), "u")
			ctx := context.Background()
			now := time.Now().UnixMilli()
			round := []series.Series{
				{Labels: []labels.Label{{Name: "__name__", Value: "kata.guest.custom"}, {Name: "disk.name", Value: "vda"}}, Samples: []series.Sample{{Timestamp: now, Value: 1}}},
				{Labels: []labels.Label{{Name: "__name__", Value: "kata_ok"}}, Samples: []series.Sample{{Timestamp: now, Value: 1}}},
			}
			require.NoError(t, q.Append(ctx, round))
			waitFor(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
				n := gathered(t, reg, "kata_monitor_remote_write_samples_sent_total") + gathered(t, reg, "kata_monitor_remote_write_samples_dropped_total")
				return n >= 2, fmt.Sprintf("%.0f", n)
			})
			require.Equal(t, 2.0, gathered(t, reg, "kata_monitor_remote_write_samples_sent_total"))
			require.Zero(t, gathered(t, reg, "kata_monitor_remote_write_samples_dropped_total"))
			waitFor(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
				got, err := rcv.Export(ctx, `{__name__="kata.guest.custom"}`, time.Now().Add(-time.Hour), time.Now())
				return err == nil && len(got) == 1 && got[0].Labels["disk.name"] == "vda", fmt.Sprintf("err=%v got=%v", err, got)
			})
		})
	}
}
