package tenant

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

// Shorthands for the helpers shared with the other remote write
// packages' tests (package rwtest).
var (
	newReceiver = rwtest.NewReceiver
	mkSeries    = rwtest.Series
	labelKey    = rwtest.LabelKey
	cpuTime     = selfmetrics.CPUTime
)

// metric sums the samples of family name in the registry whose labels
// include every pair in want (a histogram's count).
func metric(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	var kv []string
	for k, v := range want {
		kv = append(kv, k, v)
	}
	sum, _, err := selfmetrics.Sum(reg, name, kv...)
	require.NoError(t, err)
	return sum
}

// hasIdx reports whether ss holds a series labelled idx=<idx>.
func hasIdx(ss []series.Series, idx string) bool {
	for i := range ss {
		if ss[i].Get("idx") == idx {
			return true
		}
	}
	return false
}
