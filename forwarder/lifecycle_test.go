package forwarder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/test/fakecri"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

// TestSandboxGoneDuringScrape: a sandbox whose scrape fails because it
// went away while the scrape was in flight is not a failed scrape; one
// that is still there is.
func TestSandboxGoneDuringScrape(t *testing.T) {
	tests := []struct {
		name       string
		remove     func(r *rig, dir string)
		wantFailed float64
	}{
		{name: "left the live set", remove: func(r *rig, _ string) { r.sbs.set("aaa") }},
		{name: "directory removed, watcher not told yet", remove: func(_ *rig, dir string) {
			require.NoError(t, os.RemoveAll(filepath.Join(dir, "bbb")))
		}},
		{name: "still there: a failure", remove: func(*rig, string) {}, wantFailed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, id := range []string{"aaa", "bbb"} {
				require.NoError(t, os.Mkdir(filepath.Join(dir, id), 0o755))
			}
			// The scrape is held at the gate: no timeout may end it first.
			r := newRig(t, withConfig(func(c *Config) { c.ScrapeInterval, c.ScrapeTimeout = time.Minute, time.Minute }))
			r.sbs.root = dir
			r.sbs.sockets = map[string]string{"aaa": filepath.Join(dir, "aaa", "shim-monitor.sock"),
				"bbb": filepath.Join(dir, "bbb", "shim-monitor.sock")}
			r.sbs.set("aaa", "bbb")
			r.scraper.set("aaa", "up 1\n")
			r.scraper.set("bbb", "up 2\n")
			gate := make(chan struct{})
			r.scraper.gate = gate
			done := make(chan string)
			go func() {
				var out string
				defer func() { done <- out }()
				out = r.pull(t)
			}()
			require.Eventually(t, func() bool { return r.scraper.callCount("bbb") == 1 }, 10*time.Second, time.Millisecond)
			// The pod is deleted while its scrape is in flight.
			tt.remove(r, dir)
			r.scraper.fail("bbb", errors.New("read: connection reset by peer"))
			close(gate)
			out := <-done
			assert.Contains(t, out, `up{sandbox_id="aaa"} 1`)
			assert.NotContains(t, out, `sandbox_id="bbb"`)
			assert.Equal(t, tt.wantFailed, r.counter(t, "kata_monitor_scrape_failed_count"))
			st, _ := r.f.Status("bbb")
			if tt.wantFailed == 0 {
				assert.Empty(t, st.Err)
			} else {
				assert.Contains(t, st.Err, "connection reset")
			}
		})
	}
}

// TestNewSandboxFirstSampleHasPodLabels: the CRI lists a pod before its
// sandbox directory appears; the cache has not refreshed since. The very
// first sample of the sandbox, pulled or pushed, carries the cri_* labels.
func TestNewSandboxFirstSampleHasPodLabels(t *testing.T) {
	for _, mode := range []string{"pull", "push"} {
		t.Run(mode, func(t *testing.T) {
			dir := sockets.Dir(t)
			srv, err := fakecri.Start(filepath.Join(dir, "cri.sock"))
			require.NoError(t, err)
			t.Cleanup(srv.Close)
			cfg := cri.DefaultConfig()
			cfg.Endpoint = "unix:" + srv.Socket() // the form without slashes
			cache, err := cri.New(cfg, testLogger(t), prometheus.NewRegistry())
			require.NoError(t, err)
			require.NoError(t, cache.Refresh(t.Context())) // knows nothing yet

			opts := []rigOpt{func(_ *rig, _ *Config, d *Deps) { d.Pods = cache }}
			if mode == "push" {
				opts = append(opts, withPush)
			}
			r := newRig(t, opts...)
			r.sbs.set("aaa")
			r.scraper.set("aaa", "# TYPE up gauge\nup 1\n")
			r.f.scheduledRound(t.Context()) // aaa is known, without a pod

			pod := cri.Pod{UID: "u-new", Name: "new-pod", Namespace: "ns"}
			srv.SetPod("bbb", pod) // the CRI lists it first...
			r.scraper.set("bbb", "# TYPE up gauge\nup 2\n")
			r.sbs.set("aaa", "bbb") // ...then its directory appears
			calls := srv.ListCalls()
			r.clock.Add(time.Minute)
			if mode == "pull" {
				out := r.pull(t)
				assert.Contains(t, out, `up{cri_name="new-pod",cri_namespace="ns",cri_uid="u-new",sandbox_id="bbb"} 2`)
			} else {
				r.f.scheduledRound(t.Context())
				var found bool
				for _, ts := range r.appender.round(r.appender.roundCount() - 1) {
					l := labelsOf(ts)
					if l["sandbox_id"] == "bbb" {
						found = true
						assert.Equal(t, "new-pod", l["cri_name"], "%v", l)
						assert.Equal(t, "u-new", l["cri_uid"])
						assert.Equal(t, "ns", l["cri_namespace"])
					}
				}
				assert.True(t, found, "bbb pushed")
			}
			assert.Equal(t, calls+1, srv.ListCalls(), "one CRI call for the new sandbox")

			// Known sandboxes cost no CRI call.
			r.clock.Add(time.Minute)
			r.f.scheduledRound(context.Background())
			assert.Equal(t, calls+1, srv.ListCalls())
		})
	}
}
