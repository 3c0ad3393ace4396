package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakecri"
	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
)

// faultTimeout is the scrape and shim timeout of the fault tests; margin is
// what a loaded 2-core CI machine may add on top of it.
const (
	faultTimeout = time.Second
	margin       = 3 * time.Second
)

// TestSourceShimFaults: one sick shim among healthy ones, for every way a
// shim can misbehave. /metrics keeps answering within scrape_timeout plus a
// margin with every other sandbox's series, the failure is counted, the
// daemon survives, and its memory stays bounded.
// Long for its table, one row per way a shim fails.
func TestSourceShimFaults(t *testing.T) {
	t.Parallel()
	huge := bytes.Repeat([]byte("kata_filler_total 1\n"), (50<<20)/20) // 50 MiB, over the 32 MiB cap
	tests := []struct {
		name string
		// sick breaks something on node and returns the sick sandbox's id.
		sick    func(t *testing.T, node *fakenode.Node) string
		counter string // the self-metric that must move
	}{
		{name: "hung", counter: "kata_monitor_scrape_failed_count",
			sick: knob(func(s *fakeshim.Shim) { s.SetHang(true) })},
		{name: "slow", counter: "kata_monitor_scrape_failed_count",
			sick: knob(func(s *fakeshim.Shim) { s.SetLatency(3 * faultTimeout) })},
		{name: "close mid-response", counter: "kata_monitor_scrape_failed_count",
			sick: knob(func(s *fakeshim.Shim) { s.SetCloseMidResponse(true) })},
		{name: "50MB response", counter: "kata_monitor_scrape_failed_count",
			sick: knob(func(s *fakeshim.Shim) { s.SetBody(huge) })},
		{name: "http 500", counter: "kata_monitor_scrape_failed_count",
			sick: knob(func(s *fakeshim.Shim) { s.SetStatus(500) })},
		{name: "garbage", counter: "kata_monitor_scrape_parse_errors_total",
			sick: knob(func(s *fakeshim.Shim) { s.SetBody([]byte("<html>\x00\x01 not { an exposition\n")) })},
		// The text parser itself refuses a non-UTF-8 label value.
		{name: "non-UTF-8 label value", counter: "kata_monitor_scrape_parse_errors_total",
			sick: knob(func(s *fakeshim.Shim) { s.SetBody([]byte("kata_ok 1\nkata_bad{l=\"\xff\xfe\"} 1\n")) })},
		{name: "duplicate series", counter: "kata_monitor_duplicate_series_total",
			sick: knob(func(s *fakeshim.Shim) { s.SetBody([]byte("kata_dup{a=\"1\"} 1\nkata_dup{a=\"1\"} 2\n")) })},
		{name: "invalid exposition", counter: "kata_monitor_scrape_parse_errors_total",
			sick: knob(func(s *fakeshim.Shim) { s.SetBody([]byte("# TYPE kata_x counter\nkata_x{a=\"b\" 1\n")) })},
		{name: "socket nobody listens on", counter: "kata_monitor_scrape_failed_count",
			sick: func(t *testing.T, node *fakenode.Node) string {
				id := hexID("dead", 1)
				dir := filepath.Join(node.Root, id)
				require.NoError(t, os.Mkdir(dir, 0o755))
				l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "shim-monitor.sock"), Net: "unix"})
				require.NoError(t, err)
				l.SetUnlinkOnClose(false)
				require.NoError(t, l.Close())
				return id
			}},
		{name: "directory without socket", counter: "kata_monitor_scrape_failed_count",
			sick: func(t *testing.T, node *fakenode.Node) string {
				id := hexID("empty", 1)
				require.NoError(t, os.Mkdir(filepath.Join(node.Root, id), 0o755))
				return id
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			node := startNode(t, 3)
			healthy := node.IDs()
			sick := tc.sick(t, node)
			m := startMonitor(t, node, "--config", pullConfig(t, faultTimeout, 0, ""))
			waitFor(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
				_, body := m.get("/sandboxes", nil)
				return strings.Contains(body, sick), "sick sandbox not discovered yet"
			})
			var worst time.Duration
			var body string
			for range 3 {
				var code int
				var took time.Duration
				code, body, took = m.timedGet("/metrics")
				require.Equal(t, 200, code, "%.300s", body)
				worst = max(worst, took)
			}
			require.Less(t, worst, faultTimeout+margin, "/metrics waited for the sick shim")
			for _, id := range healthy {
				if id == sick {
					continue
				}
				require.Len(t, seriesLines(body, "kata_hypervisor_threads", id), 1, "healthy sandbox %s lost its series", id)
			}
			self := m.selfMetrics(t)
			require.Positive(t, self[tc.counter], "%s did not count the fault", tc.counter)
			require.True(t, m.alive(), "kata-monitor died")
			hwm := m.procStatusKiB(t, "VmHWM")
			require.Less(t, hwm, int64(300<<10), "peak RSS %d KiB", hwm)
			faultResult(t, "/metrics worst %s (timeout %s), %s=%g, failed=%g, VmHWM %d MiB, alive",
				worst.Round(time.Millisecond), faultTimeout, tc.counter, self[tc.counter],
				self["kata_monitor_scrape_failed_count"], hwm>>10)
		})
	}
}

// knob returns a sick func that applies f to the first sandbox's shim.
func knob(f func(*fakeshim.Shim)) func(*testing.T, *fakenode.Node) string {
	return func(_ *testing.T, node *fakenode.Node) string {
		id := node.IDs()[0]
		f(node.Shim(id))
		return id
	}
}

// TestSourceChurn: 2,000 sandbox directories appear and vanish in bursts
// (some with real shims) while /metrics is hammered; the live set converges
// to the directory listing and goroutines return to their baseline.
// Long because the churn, the convergence and the goroutine baseline are
// checked on one running daemon.
func TestSourceChurn(t *testing.T) {
	t.Parallel()
	node := startNode(t, 5)
	m := startMonitor(t, node, "--config", pullConfig(t, faultTimeout, 200*time.Millisecond, "sandbox:\n  resync_interval: 1s\n"))
	goroutines := func() float64 { return m.selfMetrics(t)["kata_monitor_go_goroutines"] }
	waitFor(t, 20*time.Second, 200*time.Millisecond, func() (bool, string) {
		v := m.selfMetrics(t)
		return v["kata_monitor_running_shim_count"] == 5, fmt.Sprintf("running shims %g", v["kata_monitor_running_shim_count"])
	})
	base := goroutines()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pulls, pullErrs int
	wg.Add(1)
	go func() { // a Prometheus scraping through the churn
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			code, _ := m.get("/metrics", nil)
			pulls++
			if code != 200 {
				pullErrs++
			}
		}
	}()
	began := time.Now()
	const bursts, perBurst, shimsPerBurst = 4, 500, 10
	for b := range bursts {
		var dirs []string
		for i := range perBurst {
			d := filepath.Join(node.Root, hexID(fmt.Sprintf("c%d", b), i))
			require.NoError(t, os.Mkdir(d, 0o755))
			dirs = append(dirs, d)
		}
		var shims []string
		for range shimsPerBurst {
			id, err := node.Add()
			require.NoError(t, err)
			shims = append(shims, id)
		}
		waitFor(t, 20*time.Second, 50*time.Millisecond, func() (bool, string) {
			v := m.selfMetrics(t)
			return v["kata_monitor_sandboxes"] >= 5+perBurst, fmt.Sprintf("burst %d: %g sandboxes", b, v["kata_monitor_sandboxes"])
		})
		for _, d := range dirs {
			require.NoError(t, os.Remove(d))
		}
		for _, id := range shims {
			require.NoError(t, node.Remove(id))
		}
	}
	close(stop)
	wg.Wait()

	want := strings.Join(node.IDs(), "\n")
	var got string
	waitFor(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		_, body := m.get("/sandboxes", nil)
		got = strings.TrimSpace(body)
		return got == want, fmt.Sprintf("/sandboxes:\n%.500s\nwant:\n%s", got, want)
	})
	converged := time.Since(began)
	var now float64
	waitFor(t, 20*time.Second, 200*time.Millisecond, func() (bool, string) {
		now = goroutines()
		return now <= base+10, fmt.Sprintf("goroutines %g, baseline %g", now, base)
	})
	require.True(t, m.alive())
	require.Zero(t, pullErrs, "/metrics failed during churn")
	faultResult(t, "%d dirs + %d shims in %d bursts, converged after %s, %d pulls ok, goroutines %g -> %g, alive",
		bursts*perBurst, bursts*shimsPerBurst, bursts, converged.Round(time.Millisecond), pulls, base, now)
}

// TestSourceCRI: the CRI down at start, coming up, going away and back, and
// slow; pods without a shim are ignored; a sandbox without a pod gets only
// sandbox_id; a shim cannot forge sandbox_id or cri_* labels.
// Long because the CRI's states follow each other on one running daemon.
func TestSourceCRI(t *testing.T) {
	t.Parallel()
	node := startNode(t, 3)
	ids := node.IDs()
	node.CRI.Close()
	cfg := pullConfig(t, faultTimeout, 0, "cri:\n  timeout: 500ms\n  refresh_interval: 1s\n  min_refresh_interval: 100ms\n")
	m := startMonitor(t, node, "--config", cfg)

	labelled := func(body string) int {
		n := 0
		for i := range 3 {
			for _, l := range seriesLines(body, "kata_hypervisor_threads", fakenode.ID(i)) {
				if strings.Contains(l, fmt.Sprintf(`cri_name="%s"`, fakenode.PodFor(i).Name)) {
					n++
				}
			}
		}
		return n
	}
	// Each pull runs a round; a sandbox whose scrape timed out (a loaded
	// host) is missing from that one answer, so pulls go on until every
	// sandbox was served, and every line served is checked.
	everyPull := func(check func(id, line string)) func() (bool, string) {
		return func() (bool, string) {
			_, body := m.get("/metrics", nil)
			served := 0
			for _, id := range ids {
				lines := seriesLines(body, "kata_hypervisor_threads", id)
				require.LessOrEqual(t, len(lines), 1, "sandbox %s", id)
				for _, l := range lines {
					check(id, l)
					served++
				}
			}
			return served == len(ids), fmt.Sprintf("%d of %d sandboxes served", served, len(ids))
		}
	}
	waitFor(t, 20*time.Second, 100*time.Millisecond, everyPull(func(_, line string) {
		require.NotContains(t, line, "cri_")
	}))
	require.Zero(t, m.selfMetrics(t)["kata_monitor_cri_up"])

	startCRI := func() *fakecri.Server {
		srv, err := fakecri.Start(node.CRISocket)
		require.NoError(t, err)
		t.Cleanup(srv.Close)
		for i := range 3 {
			srv.SetPod(fakenode.ID(i), fakenode.PodFor(i))
		}
		return srv
	}
	up := func(want float64) func() (bool, string) {
		return func() (bool, string) {
			v := m.selfMetrics(t)["kata_monitor_cri_up"]
			return v == want, fmt.Sprintf("cri_up %g", v)
		}
	}
	cri1 := startCRI()
	began := time.Now()
	waitFor(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		_, body := m.get("/metrics", nil)
		n := labelled(body)
		return n == 3, fmt.Sprintf("%d of 3 sandboxes labelled", n)
	})
	faultResult(t, "CRI down at start: no cri_* labels, cri_up 0; labels appeared %s after the CRI started",
		time.Since(began).Round(time.Millisecond))

	cri1.Close()
	waitFor(t, 20*time.Second, 100*time.Millisecond, up(0))
	waitFor(t, 20*time.Second, 100*time.Millisecond, everyPull(func(id, line string) {
		require.Equal(t, 1, labelled(line), "sandbox %s: labels kept from the cache while the CRI is away: %s", id, line)
	}))
	cri2 := startCRI()
	waitFor(t, 20*time.Second, 100*time.Millisecond, up(1))
	faultResult(t, "CRI went away: labels kept from the cache, cri_up 0; came back: cri_up 1")

	// A shim forging identity labels; a pod with no shim; a shim with no pod.
	node.Shim(fakenode.ID(0)).SetBody([]byte("kata_forged{sandbox_id=\"evil\",cri_name=\"evil\",cri_uid=\"evil\"} 1\n"))
	cri2.SetPod(hexID("ghost", 1), fakenode.PodFor(99))
	orphan := hexID("orphan", 1)
	require.NoError(t, os.Mkdir(filepath.Join(node.Root, orphan), 0o755))
	s, err := fakeshim.Start(filepath.Join(node.Root, orphan, "shim-monitor.sock"), fakeshim.Options{
		Exposition: []byte("kata_orphan{cri_name=\"evil\"} 1\n")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	var body string
	waitFor(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		_, body = m.get("/metrics", nil)
		return len(seriesLines(body, "kata_orphan", orphan)) == 1 && strings.Contains(body, "kata_forged{"), "orphan or forged series missing"
	})
	require.NotContains(t, body, "evil", "a shim forged an identity label")
	require.NotContains(t, body, fakenode.PodFor(99).Name, "a pod with no shim was exported")
	require.Equal(t, fmt.Sprintf(`kata_orphan{sandbox_id="%s"} 1`, orphan), seriesLines(body, "kata_orphan", orphan)[0])
	forged := seriesLines(body, "kata_forged", fakenode.ID(0))
	require.Len(t, forged, 1)
	require.Contains(t, forged[0], `cri_name="`+fakenode.PodFor(0).Name+`"`)
	_, page := m.get("/sandboxes", nil)
	require.NotContains(t, page, hexID("ghost", 1))
	faultResult(t, "forged sandbox_id/cri_* overwritten: %s; orphan sandbox: %s; pod without shim ignored", forged[0],
		seriesLines(body, "kata_orphan", orphan)[0])

	// A CRI slower than its timeout, with a sandbox it has not told us about.
	cri2.SetDelay(3 * time.Second)
	_, err = node.Add()
	require.NoError(t, err)
	var worst time.Duration
	for range 5 {
		code, _, took := m.timedGet("/metrics")
		require.Equal(t, 200, code)
		worst = max(worst, took)
	}
	require.Less(t, worst, faultTimeout+margin, "a slow CRI delayed /metrics")
	require.True(t, m.alive())
	faultResult(t, "CRI answering after 3s (timeout 500ms) with an unknown sandbox: /metrics worst %s", worst.Round(time.Millisecond))
}
