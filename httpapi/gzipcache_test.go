package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gunzipOne decodes exactly one gzip member and fails on trailing bytes, so
// a response assembled from pieces must be one well-formed member.
func gunzipOne(t testing.TB, body []byte) string {
	t.Helper()
	br := bytes.NewReader(body)
	zr, err := gzip.NewReader(br)
	require.NoError(t, err)
	zr.Multistream(false)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err, "gzip stream")
	require.Zero(t, br.Len(), "bytes after the gzip member")
	return string(plain)
}

// shimPart cuts off kata-monitor's own families, which change per request.
func shimPart(s string) string {
	if i := strings.Index(s, "# HELP kata_monitor_"); i >= 0 {
		return s[:i]
	}
	return s
}

// bigFamilies is an exposition of several MiB, so compression spans many
// chunks and workers.
func bigFamilies(n int) []string {
	fams := make([]string, 0, n)
	for i := range n {
		var b strings.Builder
		fmt.Fprintf(&b, "# HELP kata_big_%03d A family.\n# TYPE kata_big_%03d gauge\n", i, i)
		for j := range 2000 {
			fmt.Fprintf(&b, "kata_big_%03d{sandbox_id=\"%064d\",item=\"x%d\"} %d\n", i, j, j, i*j)
		}
		fams = append(fams, b.String())
	}
	return fams
}

func TestMetricsGzipCache(t *testing.T) {
	gz := http.Header{"Accept-Encoding": {"gzip"}}
	tests := []struct {
		name     string
		families []string
	}{
		{"small", shimFamilies},
		{"several chunks", bigFamilies(30)},
		{"empty exposition", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, DefaultConfig(), nil)
			env.metrics.families = tt.families
			env.metrics.round = 7
			plain := do(t, env.api.Handler(), http.MethodGet, "/metrics", nil)
			require.Equal(t, http.StatusOK, plain.Code)

			const clients = 4
			bodies := make([]string, clients)
			var wg sync.WaitGroup
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					w := do(t, env.api.Handler(), http.MethodGet, "/metrics", gz)
					assert.Equal(t, "gzip", w.Header().Get("Content-Encoding"))
					bodies[i] = gunzipOne(t, w.Body.Bytes())
				}()
			}
			wg.Wait()
			for _, b := range bodies {
				// Own metrics (a gauge set to 2) follow the shim families
				// exactly as in the uncompressed response.
				require.Equal(t, shimPart(plain.Body.String()), shimPart(b))
			}
			assert.Contains(t, bodies[0], "kata_monitor_running_shim_count 2\n")
			// One render for the plain response, one shared by every gzip one.
			assert.Len(t, env.metrics.prefixes, 2)
		})
	}
}

func TestMetricsGzipCacheFollowsRounds(t *testing.T) {
	env := newTestEnv(t, DefaultConfig(), nil)
	gz := http.Header{"Accept-Encoding": {"gzip"}}
	get := func() string {
		w := do(t, env.api.Handler(), http.MethodGet, "/metrics", gz)
		require.Equal(t, http.StatusOK, w.Code)
		return gunzipOne(t, w.Body.Bytes())
	}
	env.metrics.round = 1
	first := get()
	assert.Contains(t, first, "kata_agent_io_stat")
	assert.Len(t, env.metrics.prefixes, 1)

	// A new round is compressed again and its content served.
	env.metrics.mu.Lock()
	env.metrics.round, env.metrics.families = 2, shimFamilies[:1]
	env.metrics.mu.Unlock()
	second := get()
	assert.NotContains(t, second, "kata_agent_io_stat")
	assert.Len(t, env.metrics.prefixes, 2)

	// An older snapshot (a slow request) does not replace the cache.
	env.metrics.mu.Lock()
	env.metrics.round, env.metrics.families = 1, shimFamilies
	env.metrics.mu.Unlock()
	assert.Contains(t, get(), "kata_agent_io_stat")
	env.metrics.mu.Lock()
	env.metrics.round, env.metrics.families = 2, shimFamilies[:1]
	env.metrics.mu.Unlock()
	assert.Equal(t, shimPart(second), shimPart(get()))
	assert.Len(t, env.metrics.prefixes, 3)

	// filter_family responses are compressed per request, without own metrics.
	w := do(t, env.api.Handler(), http.MethodGet, "/metrics?filter_family=kata_hypervisor", gz)
	got := gunzipOne(t, w.Body.Bytes())
	assert.Contains(t, got, "kata_hypervisor_fds")
	assert.NotContains(t, got, "kata_monitor_")
}

func TestMetricsSelf(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		gzip   bool
		ctype  string
	}{
		{name: "text", ctype: textContentType},
		{name: "gzip", header: http.Header{"Accept-Encoding": {"gzip"}}, gzip: true, ctype: textContentType},
		{name: "protobuf", header: http.Header{"Accept": {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"}},
			ctype: "application/vnd.google.protobuf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, DefaultConfig(), nil)
			env.metrics.err = context.Canceled // the forwarder is never asked
			w := do(t, env.api.Handler(), http.MethodGet, "/metrics/self", tt.header)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			assert.True(t, strings.HasPrefix(w.Header().Get("Content-Type"), tt.ctype), w.Header().Get("Content-Type"))
			assert.Zero(t, env.metrics.views)
			assert.Empty(t, env.shims.Requested())
			if tt.ctype != textContentType {
				return
			}
			body := w.Body.String()
			if tt.gzip {
				body = gunzipOne(t, w.Body.Bytes())
			}
			names := familyNames(t, body)
			assert.True(t, names["kata_monitor_running_shim_count"])
			assert.False(t, names["kata_hypervisor_fds"])
		})
	}
}

func TestMetricsStreamErrorAfterHeader(t *testing.T) {
	// A failure once the status line is out cannot become a 503: the
	// response is cut instead (the client sees a truncated body).
	env := newTestEnv(t, DefaultConfig(), nil)
	w := &failingWriter{ResponseWriter: nil, header: http.Header{}}
	r, err := http.NewRequest(http.MethodGet, "/metrics", nil)
	require.NoError(t, err)
	env.api.Handler().ServeHTTP(w, r)
	assert.Equal(t, http.StatusOK, w.code)
}

// failingWriter accepts the header and fails every body write, like a
// client that left.
type failingWriter struct {
	http.ResponseWriter
	header http.Header
	code   int
}

func (f *failingWriter) Header() http.Header { return f.header }
func (f *failingWriter) WriteHeader(code int) {
	if f.code == 0 {
		f.code = code
	}
}
func (f *failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// TestGzipBodyRightSized: a cached compression holds its deflate output at
// its size (no buffer sized by a guess, no second copy), over several
// chunks and workers, and still decodes to the text.
func TestGzipBodyRightSized(t *testing.T) {
	text := strings.Join(bigFamilies(10), "")
	pool := newPools()
	c := &gzipCache{workers: 2, flate: &pool.flate}
	b := c.get(context.Background(), 1, func(w io.Writer) error {
		_, err := io.WriteString(w, text)
		return err
	})
	require.NoError(t, b.err)
	require.Greater(t, len(b.deflate), 2, "several chunks")
	length, capacity := b.held()
	// Allocations round up to 8 KiB pages at these sizes.
	assert.LessOrEqual(t, capacity, length+len(b.deflate)*8<<10)
	var out bytes.Buffer
	require.NoError(t, writeGzip(&out, b, []byte("tail 1\n")))
	assert.Equal(t, text+"tail 1\n", gunzipOne(t, out.Bytes()))
}
