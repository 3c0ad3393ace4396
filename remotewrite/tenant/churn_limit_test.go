package tenant

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// TestRouterShortLivedNamespacesNotLimited: namespaces that live a few
// rounds each and go (CI jobs, preview environments), far fewer alive at
// once than tenant.max_tenants but more over an hour: every sample of
// every namespace is delivered, none dropped for the limit. A tenant that
// got no series in the last round and has nothing pending gives its
// place to a new tenant once the limit is reached, whatever idle_timeout
// says (default 1h: without this the 5th namespace here, and the 65th at
// the defaults, lost its samples for an hour). Tenants that get series
// every round keep their places: with more of them than max_tenants the
// newest are still dropped (TestRouterTenantBound).
func TestRouterShortLivedNamespacesNotLimited(t *testing.T) {
	rc := newReceiver(t, nil).Start()
	const maxTenants, lifetime, namespaces = 4, 2, 40
	fx := newRouterFixture(t, rc.URL(), "", config.TenantConfig{Label: "cri_namespace", MaxTenants: maxTenants}) // idle_timeout 1h
	fx.run(t)
	want := map[string]int{}
	for round := range namespaces + lifetime - 1 {
		// Namespace i lives in rounds i .. i+lifetime-1: at most
		// `lifetime` alive at once, beside the default tenant.
		alive := aliveNamespaces(round, lifetime, namespaces)
		for _, ns := range alive {
			want[ns] += 3
		}
		fx.appendRound(t, nsRound(int64(1000+round), 3, append(alive, "")...))
		// The round is delivered before the next starts, as at a 15 s
		// interval: a tenant gone since then has nothing pending.
		require.Eventually(t, func() bool { return fx.pending() == 0 }, 20*time.Second, time.Millisecond, "round %d", round)
	}
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_tenant_samples_dropped_total", map[string]string{"reason": reasonTenantLimit}),
		"short-lived namespaces dropped for tenant.max_tenants although at most %d were alive at once", lifetime)
	got := map[string]int{}
	require.Eventually(t, func() bool {
		clear(got)
		for k, ss := range rc.Stored() {
			if ns := labelValue(k, "cri_namespace"); ns != "" {
				got[ns] += len(ss)
			}
		}
		return len(got) == len(want)
	}, 20*time.Second, 5*time.Millisecond)
	require.Equal(t, want, got)
	require.LessOrEqual(t, len(fx.r.Tenants()), maxTenants+1)

	// More tenants than max_tenants with series every round: the ones
	// with a place keep it (no queue closed and reopened every round),
	// the one past the limit is dropped every round.
	steady := []string{"s0", "s1", "s2", "s3", "s4"}
	limited := func() float64 {
		return metric(t, fx.reg, "kata_monitor_remote_write_tenant_samples_dropped_total", map[string]string{"reason": reasonTenantLimit})
	}
	var before float64
	for round := range 6 {
		fx.appendRound(t, nsRound(int64(2000+round), 3, steady...))
		require.Eventually(t, func() bool { return fx.pending() == 0 }, 20*time.Second, time.Millisecond)
		// The first round keeps the tenants of the last churned round (they
		// got series in the last round) and drops what has no place.
		if round == 0 {
			before = limited()
			continue
		}
		require.Equal(t, []string{config.DefaultTenant, "s0", "s1", "s2", "s3"}, fx.r.Tenants(), "round %d", round)
	}
	require.Equal(t, 5*3.0, limited()-before, "s4, and only s4, dropped in each later round")
	fx.r.mu.Lock()
	buckets := len(fx.r.buckets)
	fx.r.mu.Unlock()
	require.LessOrEqual(t, buckets, 2*maxTenants+2, "the router keeps a bucket per tenant ever seen")
}

// labelValue is the value of label name in a receiver's series key
// (rwtest.LabelKey), "" without it.
func labelValue(key, name string) string {
	for _, kv := range strings.Split(key, ",") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// pending is the blocks pending in every open tenant's queue.
func (f *routerFixture) pending() int {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	n := 0
	for _, tq := range f.r.tenants {
		n += tq.q.PendingBlocks()
	}
	return n
}

// aliveNamespaces is the churn tests' namespaces in round: "ns-i" for each
// of namespaces that lives lifetime rounds from round i, so lifetime of
// them are alive at once once they started, fewer at the ends.
func aliveNamespaces(round, lifetime, namespaces int) []string {
	var alive []string
	for i := max(0, round-lifetime+1); i <= round && i < namespaces; i++ {
		alive = append(alive, fmt.Sprint("ns-", i))
	}
	return alive
}
