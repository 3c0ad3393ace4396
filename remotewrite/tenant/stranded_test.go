package tenant

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// TestStrandedTenantQueue: an endpoint with `tenant` keeps its tenants'
// shared WAL in wal.dir/<name>/tenants.wal/. Renamed while its receiver
// was down, its backlog must be reported like any stranded queue (issue
// 10, item 3: "every directory under wal.dir that no endpoint owns").
func TestStrandedTenantQueue(t *testing.T) {
	rc, up := rwtest.NewSwitchReceiver(t)
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace"})
	stop := fx.run(t)
	ss := []series.Series{{
		Labels:  []labels.Label{{Name: "__name__", Value: "m"}, {Name: "cri_namespace", Value: "team-a"}},
		Samples: []series.Sample{{Timestamp: 1_700_000_000_000, Value: 1}},
	}}
	fx.appendRound(t, ss)
	require.Eventually(t, func() bool {
		return metric(t, fx.reg, "kata_monitor_remote_write_samples_failed_total", nil) > 0
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop())
	require.NoError(t, fx.r.Close())

	renamed := fx.cfg
	renamed.Name = "ep2"
	got, err := remotewrite.ReportStranded(fx.walCfg, []config.Config{renamed}, rwtest.Logger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	total := 0
	for _, sq := range got {
		total += sq.PendingSamples
	}
	require.Equal(t, 1, total, "the renamed tenant endpoint's backlog is reported: %+v", got)
	require.Equal(t, "ep", got[0].Dir)
	require.Equal(t, int64(1_700_000_000_000), got[0].OldestPending.UnixMilli())

	// Adopted the documented way (name set back, tenant section kept):
	// the backlog is sent.
	up.Store(true)
	fx2 := newRouterFixture(t, rc.URL(), fx.walCfg.Dir, config.TenantConfig{Label: "cri_namespace"})
	fx2.run(t)
	require.Eventually(t, func() bool {
		return metric(t, fx2.reg, "kata_monitor_remote_write_samples_sent_total", nil) == 1
	}, 10*time.Second, 5*time.Millisecond)
}
