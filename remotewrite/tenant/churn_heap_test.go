package tenant

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// TestRouterNamespaceChurnBounded: 200 namespaces that live two rounds
// each, at the default max_tenants and idle_timeout, through a WAL whose
// segments rotate (256 KiB): once the open tenants are at max_tenants,
// the heap and the fast ack file stop growing. A closed tenant's WAL
// stream state leaves with its last segment, its queue's connections
// when it closes (TestRouterClosedTenantsCloseTheirConnections); without
// the latter each namespace ever seen cost ~35 KiB of heap (4.1 MiB more
// over the last 120 namespaces here, against ~0.4 MiB).
func TestRouterNamespaceChurnBounded(t *testing.T) {
	srv := drainReceiver(t)
	fx := newRouterFixture(t, srv.URL, "", config.TenantConfig{Label: "cri_namespace"})
	require.NoError(t, fx.r.Close())
	fx.walCfg.MaxSize = 4 << 20 // segments of 256 KiB: one every ~20 rounds here
	r, err := New(fx.cfg, fx.walCfg, nil, fx.reg)
	require.NoError(t, err)
	fx.r = r
	fx.run(t)
	fast := filepath.Join(fx.walCfg.Dir, "ep", remotewrite.TenantWALDir, disk.FastAckFileName)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	const lifetime, namespaces, warm = 2, 200, 80
	var heap0 uint64
	var fast0 int64
	for round := range namespaces + lifetime - 1 {
		alive := aliveNamespaces(round, lifetime, namespaces)
		fx.appendRound(t, nsRound(int64(1000+round), 100, append(alive, "")...))
		require.Eventually(t, func() bool { return fx.pending() == 0 }, 20*time.Second, time.Millisecond, "round %d", round)
		if round == warm {
			heap0 = heap()
			fi, err := os.Stat(fast)
			require.NoError(t, err)
			fast0 = fi.Size()
		}
	}
	heap1 := heap()
	fi, err := os.Stat(fast)
	require.NoError(t, err)
	t.Logf("heap %d -> %d KiB, ack.fast %d -> %d B over %d more namespaces", heap0>>10, heap1>>10, fast0, fi.Size(), namespaces-warm)
	require.Zero(t, metric(t, fx.reg, "kata_monitor_remote_write_tenant_samples_dropped_total", map[string]string{"reason": reasonTenantLimit}))
	require.Less(t, heap1, heap0+(2<<20), "heap grows with the namespaces ever seen")
	require.Less(t, fi.Size(), 2*fast0+4096, "the fast ack file grows with the namespaces ever seen")
}
