package forwarder

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/kata-containers/kata-monitor/sources/shim"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

// The seams match the real sources.
var (
	_ Sandboxes = (*sandbox.Watcher)(nil)
	_ Pods      = (*cri.Cache)(nil)
	_ Scraper   = (*shim.Pool)(nil)
	_ Forgetter = (*shim.Pool)(nil)
)

// serveShim serves body as /metrics on a real unix socket; hang makes
// /metrics block until the client gives up.
func serveShim(t *testing.T, body string, hang bool) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if hang {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	})
	return sockets.Serve(t, mux, nil)
}

func TestRealShimSockets(t *testing.T) {
	body := sharedExposition(t)
	pool, err := shim.NewPool(shim.DefaultConfig(), prometheus.NewRegistry())
	require.NoError(t, err)
	r := newRig(t, func(_ *rig, c *Config, d *Deps) {
		d.Scraper = pool
		c.ScrapeInterval, c.ScrapeTimeout = time.Second, 300*time.Millisecond
	})
	r.sbs.sockets = map[string]string{
		"aaa": serveShim(t, body, false),
		"bbb": serveShim(t, "", true),
		"ccc": serveShim(t, body, false),
	}
	r.sbs.set("aaa", "bbb", "ccc")

	began := time.Now()
	out := r.pull(t)
	assert.Less(t, time.Since(began), 3*time.Second, "a hung shim costs at most the scrape timeout")
	mfs := parseText(t, out)
	assert.Equal(t, 2*759, seriesCount(mfs))
	assert.NotContains(t, out, `sandbox_id="bbb"`)
	st, ok := r.f.Status("bbb")
	require.True(t, ok)
	assert.NotEmpty(t, st.Err)

	// The filtered form of the same snapshot.
	filtered := r.pull(t, "kata_shim_go_")
	for _, line := range strings.Split(strings.TrimSpace(filtered), "\n") {
		if !strings.HasPrefix(line, "#") {
			assert.True(t, strings.HasPrefix(line, "kata_shim_go_"), line)
		}
	}
}

func TestVanishedSandboxIsForgotten(t *testing.T) {
	r := newRig(t)
	r.sbs.set("aaa", "bbb")
	r.scraper.set("aaa", "up 1\n")
	r.scraper.set("bbb", "up 2\n")
	r.pull(t)
	r.sbs.set("aaa")
	r.clock.Add(time.Minute)
	r.pull(t)
	r.scraper.mu.Lock()
	defer r.scraper.mu.Unlock()
	assert.Equal(t, []string{"bbb"}, r.scraper.forgot)
}
