package forwarder

import (
	"bytes"
	"compress/flate"
	"net/http"
	"path/filepath"
	"testing"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/sources/shim"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

// TestScrapeFormats: the answer's Content-Type picks the parser; the same
// data in text and OpenMetrics serves the same pull lines, and a format
// nobody asked for is a scrape failure saying so.
// Long for its table, one row per Content-Type.
func TestScrapeFormats(t *testing.T) {
	const text = "# HELP x_total Requests.\n# TYPE x_total counter\nx_total{code=\"200\"} 3\n" +
		"# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3.5\nlat_count 2\n"
	const om = "# HELP x Requests.\n# TYPE x counter\n" +
		"x_total{code=\"200\"} 3 # {trace_id=\"abc\"} 1 1700000000.000\n" +
		"x_created{code=\"200\"} 1.7e+09\n" +
		"# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3.5\nlat_count 2\n# EOF\n"
	wantLines := []string{
		`x_total{code="200",sandbox_id="aaa"} 3`,
		`lat_bucket{le="1",sandbox_id="aaa"} 1`,
		`lat_bucket{le="+Inf",sandbox_id="aaa"} 2`,
		`lat_sum{sandbox_id="aaa"} 3.5`,
		`lat_count{sandbox_id="aaa"} 2`,
	}
	tests := []struct {
		name, body, ct string
		want           []string
		wantErr        string
		failed         bool // a failed scrape, not a parse error
	}{
		{name: "text 0.0.4", body: text, ct: "text/plain; version=0.0.4; charset=utf-8", want: wantLines},
		{name: "no content type is text", body: text, ct: "", want: wantLines},
		{name: "text 1.0.0", body: text, ct: "text/plain;version=1.0.0;escaping=allow-utf-8", want: wantLines},
		{name: "openmetrics with exemplars, _created and # EOF", body: om,
			ct:   "application/openmetrics-text; version=1.0.0; charset=utf-8",
			want: append(wantLines, `x_created{code="200",sandbox_id="aaa"} 1.7e+09`)},
		{name: "openmetrics without # EOF keeps what came before", body: om[:len(om)-len("# EOF\n")],
			ct: "application/openmetrics-text; version=1.0.0", want: wantLines, wantErr: "parse: "},
		{name: "protobuf was not asked for", body: "\x0a\x03abc", ct: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
			wantErr: "unsupported exposition format", failed: true},
		{name: "binary garbage shows printable", body: "\x1f\x8b\x08\x00garbage\x00\xff", ct: "text/plain",
			wantErr: "parse: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.sbs.set("aaa")
			r.scraper.set("aaa", tt.body)
			r.scraper.types["aaa"] = tt.ct
			out := r.pull(t)
			for _, l := range tt.want {
				assert.Contains(t, out, l+"\n")
			}
			parseText(t, out)
			st, ok := r.f.Status("aaa")
			require.True(t, ok)
			if tt.wantErr == "" {
				assert.Empty(t, st.Err)
				return
			}
			assert.Contains(t, st.Err, tt.wantErr)
			for _, c := range st.Err {
				assert.True(t, unicode.IsPrint(c), "non-printable %q in %q", c, st.Err)
			}
			if tt.failed {
				assert.Equal(t, 1.0, r.counter(t, "kata_monitor_scrape_failed_count"))
				assert.Zero(t, r.counter(t, "kata_monitor_scrape_parse_errors_total"))
			} else {
				assert.Equal(t, 1.0, r.counter(t, "kata_monitor_scrape_parse_errors_total"))
			}
		})
	}
}

// TestUnaskedEncodingIsAScrapeFailure: a real shim answering deflate that
// nobody asked for is a failed scrape naming the encoding, never binary
// parsed as text; gzip, asked for, is read.
func TestUnaskedEncodingIsAScrapeFailure(t *testing.T) {
	dir := sockets.Dir(t)
	const body = "# TYPE up gauge\nup 1\n"
	var deflated bytes.Buffer
	fw, _ := flate.NewWriter(&deflated, flate.BestSpeed)
	_, _ = fw.Write([]byte(body))
	_ = fw.Close()
	start := func(id string) string {
		sock := filepath.Join(dir, id+".sock")
		s, err := fakeshim.Start(sock, fakeshim.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		if id == "def" {
			s.SetBody(deflated.Bytes())
			s.SetHeaders(http.Header{"Content-Encoding": {"deflate"}})
		} else {
			s.SetBody([]byte(body))
			s.SetGzip(true)
		}
		return sock
	}
	pool, err := shim.NewPool(shim.DefaultConfig(), prometheus.NewRegistry())
	require.NoError(t, err)
	r := newRig(t, func(_ *rig, _ *Config, d *Deps) { d.Scraper = pool })
	r.sbs.sockets = map[string]string{"def": start("def"), "gz": start("gz")}
	r.sbs.set("def", "gz")
	out := r.pull(t)
	assert.Equal(t, "# TYPE up gauge\nup{sandbox_id=\"gz\"} 1\n", out)
	st, ok := r.f.Status("def")
	require.True(t, ok)
	assert.Contains(t, st.Err, `Content-Encoding "deflate"`)
	assert.Equal(t, 1.0, r.counter(t, "kata_monitor_scrape_failed_count"))
	assert.Zero(t, r.counter(t, "kata_monitor_scrape_parse_errors_total"))
}
