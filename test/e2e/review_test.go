package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/test/background"
	"github.com/kata-containers/kata-monitor/test/receiver"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

// runQueue runs an in-process remotewrite.Queue for url (no metadata,
// WAL in a temp dir, logs to the test) until the test ends, so samples
// reach the receiver exactly as built, without the daemon's forwarder.
func runQueue(t *testing.T, url, name string) (*remotewrite.Queue, *prometheus.Registry) {
	t.Helper()
	return runSender(t, config.Config{URL: url, Name: name}, remotewrite.New)
}

// runSender is runQueue for any endpoint config and any sender build
// makes from it (remotewrite.New, tenant.New): metadata off, WAL in a temp
// dir, logs to the test, running until the test ends.
func runSender[S interface{ Run(context.Context) error }](t *testing.T, cfg config.Config,
	build func(config.Config, config.WALConfig, *slog.Logger, prometheus.Registerer, ...remotewrite.Option) (S, error)) (S, *prometheus.Registry) {
	t.Helper()
	f := false
	cfg.MetadataConfig.Send = &f
	walCfg := config.DefaultWALConfig()
	walCfg.Dir = t.TempDir()
	reg := prometheus.NewRegistry()
	s, err := build(cfg, walCfg, slog.New(slog.NewTextHandler(t.Output(), nil)), reg)
	require.NoError(t, err)
	background.Run(t, s.Run)
	return s, reg
}

// gathered sums the samples of the family name in reg whose labels
// include kv (name, value pairs).
var gathered = selfmetrics.MustSum

// TestReviewWrongPathVictoriaMetrics: a url whose path is not a write path
// (a typo, or the base URL without /api/v1/write) is answered by
// VictoriaMetrics 1.79 with 400 "unsupported path requested" for every
// request. That says nothing about the data: it must wait in the WAL for the
// config to be fixed (retried, failing_since set), not be split and dropped
// as refused.
func TestReviewWrongPathVictoriaMetrics(t *testing.T) {
	t.Parallel()
	vm := startReceiver(t, receiver.VictoriaMetrics)
	for _, path := range []string{"/api/v1/writ", "/"} {
		t.Run(path, func(t *testing.T) {
			q, reg := runQueue(t, vm.BaseURL()+path, "typo")
			ctx := context.Background()

			const nSeries = 20
			now := time.Now().UnixMilli()
			round := make([]series.Series, nSeries)
			for i := range round {
				round[i] = series.Series{
					Labels:  []labels.Label{{Name: "__name__", Value: "e2e_review_path"}, {Name: "idx", Value: fmt.Sprint(i)}},
					Samples: []series.Sample{{Timestamp: now, Value: 1}},
				}
			}
			require.NoError(t, q.Append(ctx, round))
			waitFor(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
				n := gathered(t, reg, "kata_monitor_remote_write_requests_total")
				return n >= 2, fmt.Sprintf("%.0f requests answered", n)
			})
			require.Zero(t, gathered(t, reg, "kata_monitor_remote_write_samples_dropped_total"), "nothing dropped for a wrong URL path")
			require.Positive(t, gathered(t, reg, "kata_monitor_remote_write_failing_since_timestamp_seconds"), "failing_since shows the stall")
			require.Equal(t, float64(nSeries), gathered(t, reg, "kata_monitor_wal_pending_samples"), "the round waits in the WAL")
		})
	}
}
