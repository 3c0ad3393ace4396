package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/receiver"
)

// hangConfig is a push config with its own scrape_timeout (writeConfig
// sets it to the interval).
func hangConfig(t *testing.T, interval, timeout, url string) string {
	t.Helper()
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  push_self_metrics: false\n"+
		"wal:\n  dir: %s\n  max_size: 64MiB\nremote_write:\n  - name: vm\n    url: %s\n%s",
		interval, timeout, t.TempDir(), url, noMetadata)
	p := filepath.Join(t.TempDir(), "kata-monitor.yaml")
	require.NoError(t, os.WriteFile(p, []byte(cfg), 0o644))
	return p
}

// TestShutdownShimHangs: SIGTERM while a shim never answers (and, in one
// case, the CRI neither) ends within scrape_timeout plus the 5 s flush
// deadline (a round in flight at shutdown finishes, 91e2857, but its
// scrapes and CRI calls are bounded), with exit 0;
// and a second SIGTERM while the first is still being honoured ends the
// process at once (the WAL is crash-safe: an operator's or the kubelet's
// second signal is not swallowed).
func TestShutdownShimHangs(t *testing.T) {
	t.Parallel()
	vm := startReceiver(t, receiver.VictoriaMetrics)
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		twice   bool
		criHung bool // the CRI never answers either, and a sandbox appears
	}{
		{"one SIGTERM waits at most scrape_timeout + flush", 2 * time.Second, false, false},
		{"the CRI hangs too", 2 * time.Second, false, true},
		{"a second SIGTERM exits at once", 20 * time.Second, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := startNode(t, 2)
			hung := node.Shim(node.IDs()[0])
			cfg := hangConfig(t, tc.timeout.String(), tc.timeout.String(), vm.WriteURL())
			m := startMonitor(t, node, "--config", cfg)
			hung.SetHang(true)
			if tc.criHung {
				// A new sandbox makes the round ask the CRI (bounded by
				// the new-pod lookup timeout); the cache's refresh hangs.
				node.CRI.SetDelay(time.Hour)
				_, err := node.Add()
				require.NoError(t, err)
			}
			// A scheduled round is in flight once the hung shim is asked
			// (the first round runs at start).
			n := hung.Scrapes()
			waitFor(t, 3*tc.timeout+10*time.Second, 50*time.Millisecond, func() (bool, string) {
				return hung.Scrapes() > n, "the hung shim not scraped yet"
			})
			t0 := time.Now()
			require.NoError(t, m.proc.Signal(syscall.SIGTERM))
			if tc.twice {
				waitFor(t, 10*time.Second, 20*time.Millisecond, func() (bool, string) {
					return strings.Contains(m.log.String(), "shutting down"), "no shutdown logged"
				})
				code := m.stop(syscall.SIGTERM)
				took := time.Since(t0)
				require.NotEqual(t, 0, code, "killed by the second signal")
				require.Less(t, took, tc.timeout/2, "the second SIGTERM did not end the process at once")
				t.Logf("second SIGTERM: exit %d after %s", code, took.Round(10*time.Millisecond))
				return
			}
			code := m.stop(0)
			took := time.Since(t0)
			require.Equal(t, 0, code, "clean exit")
			require.Less(t, took, tc.timeout+time.Second+5*time.Second+3*time.Second, "shutdown bounded by the new-pod lookup, scrape_timeout and the flush")
			t.Logf("SIGTERM with a hung shim: exit 0 after %s (scrape_timeout %s)", took.Round(10*time.Millisecond), tc.timeout)
		})
	}
}
