package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/tenant"
	"github.com/kata-containers/kata-monitor/test/receiver"
)

// Issue 16: a backlog older than the receiver's window.

// TestOutageWindowPrometheus: a backlog older than what the real
// Prometheus 2.42 accepts (it refuses samples older than its head's newest
// minus an hour with 400 "out of bounds") is dropped and counted as
// too_old, the part of the backlog inside the window is delivered, in
// order, and sent + dropped = appended for the tenant. The queue runs
// in-process so the backlog's timestamps are chosen (the daemon stamps
// rounds with the time of the scrape).
func TestOutageWindowPrometheus(t *testing.T) {
	t.Parallel()
	prom := startReceiver(t, receiver.Prometheus)
	r, reg := runSender(t, config.Config{URL: prom.WriteURL(), Name: "prom", Tenant: &config.TenantConfig{Label: "ns"}}, tenant.New)
	ctx := ctxT(t)

	const nSeries, oldRounds, newRounds = 10, 30, 30
	now := time.Now().Truncate(time.Second)
	round := func(name string, ts time.Time, v float64) []series.Series {
		out := make([]series.Series, nSeries)
		for i := range out {
			out[i] = series.Series{
				Labels:  []labels.Label{{Name: "__name__", Value: name}, {Name: "idx", Value: fmt.Sprint(i)}, {Name: "ns", Value: "team-a"}},
				Samples: []series.Sample{{Timestamp: ts.UnixMilli(), Value: v}},
			}
		}
		return out
	}
	// Another node's recent samples set the receiver's head to now.
	require.NoError(t, r.Append(ctx, round("e2e_window_other", now, 1)))
	require.NoError(t, r.Commit(ctx))
	// The backlog of a node that was cut off for 3 hours: rounds a minute
	// apart, the first 30 older than the window, the last 30 inside it.
	for k := range oldRounds + newRounds {
		at := now.Add(-3 * time.Hour).Add(time.Duration(k) * time.Minute)
		if k >= oldRounds {
			at = now.Add(-30 * time.Minute).Add(time.Duration(k-oldRounds) * time.Minute)
		}
		require.NoError(t, r.Append(ctx, round("e2e_window", at, float64(k))))
		require.NoError(t, r.Commit(ctx))
	}
	metric := func(name string, labels ...string) float64 { return gathered(t, reg, name, labels...) }
	appended := float64(nSeries * (1 + oldRounds + newRounds))
	waitFor(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		sent := metric("kata_monitor_remote_write_samples_sent_total", "tenant", "team-a")
		dropped := metric("kata_monitor_remote_write_samples_dropped_total", "tenant", "team-a")
		return sent+dropped == appended, fmt.Sprintf("sent %.0f + dropped %.0f of %.0f", sent, dropped, appended)
	})
	sent := metric("kata_monitor_remote_write_samples_sent_total", "tenant", "team-a")
	tooOld := metric("kata_monitor_remote_write_samples_dropped_total", "tenant", "team-a", "reason", "too_old")
	require.Equal(t, appended, metric("kata_monitor_remote_write_samples_appended_total", "tenant", "team-a"))
	require.Equal(t, float64(nSeries*oldRounds), tooOld, "exactly the backlog older than the window, as too_old")
	require.Equal(t, float64(nSeries*(1+newRounds)), sent)
	got, err := prom.Export(ctxT(t), `e2e_window`, now.Add(-31*time.Minute), now)
	require.NoError(t, err)
	require.Len(t, got, nSeries)
	for _, s := range got {
		require.Len(t, s.Values, newRounds, "the backlog inside the window, whole")
		for i := range s.Values {
			require.Equal(t, float64(oldRounds+i), s.Values[i], "in order")
		}
	}
	result(t, "Prometheus 2.42, a 3-hour backlog (60 rounds a minute apart, 10 series): the 30 rounds older than its window answered 400 \"out of bounds\", dropped as too_old (%.0f samples), the 30 inside delivered in order; appended %.0f = sent %.0f + too_old %.0f",
		tooOld, appended, sent, tooOld)
}
