package tenant

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// TestRouterIdleChurnLosesNothing: tenants that come and go while their
// queues are closed for idleness (a 40 ms idle timeout) and reopened, with
// rounds handed over in several chunks, lose no sample: every sample of
// every round reaches the receiver.
func TestRouterIdleChurnLosesNothing(t *testing.T) {
	rc := newReceiver(t, nil).Start()
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace", IdleTimeout: model.Duration(40 * time.Millisecond)})
	fx.run(t)
	total := 0
	for r := range 60 {
		var round []series.Series
		for _, ns := range []string{fmt.Sprint("t", r%5), fmt.Sprint("u", r%3)} {
			for i := range 3 {
				round = append(round, mkSeries("m", []series.Sample{{Timestamp: int64(r + 1), Value: 1}}, "cri_namespace", ns, "idx", fmt.Sprint(i)))
			}
		}
		for lo := 0; lo < len(round); lo += 2 {
			require.NoError(t, fx.r.Append(context.Background(), round[lo:lo+2]))
		}
		require.NoError(t, fx.r.Commit(context.Background()))
		total += len(round)
		time.Sleep(15 * time.Millisecond) // let idle tenants close between rounds
	}
	stored := func() int {
		n := 0
		for _, ss := range rc.Stored() {
			n += len(ss)
		}
		return n
	}
	require.Eventually(t, func() bool { return stored() >= total }, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, total, stored())
}
