package httpapi

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// getMetrics answers GET /metrics from a fresh test env, with the header
// name set to value unless value is empty, and requires a 200.
func getMetrics(t *testing.T, name, value string) (*testEnv, *httptest.ResponseRecorder) {
	t.Helper()
	env := newTestEnv(t, DefaultConfig(), nil)
	h := http.Header{}
	if value != "" {
		h.Set(name, value)
	}
	w := do(t, env.api.Handler(), http.MethodGet, "/metrics", h)
	require.Equal(t, http.StatusOK, w.Code)
	return env, w
}

// do runs one request against the API's handler.
func do(t testing.TB, h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// familyNames parses a text exposition and returns its family names.
func familyNames(t testing.TB, body string) map[string]bool {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err, body)
	out := map[string]bool{}
	for n := range fams {
		out[n] = true
	}
	return out
}

func TestMetricsMerged(t *testing.T) {
	tests := []struct {
		name         string
		query        string
		wantPrefixes []string
		want         []string
		absent       []string
	}{
		{
			name: "no filter includes own metrics",
			want: []string{"kata_hypervisor_fds", "kata_shim_rpc_durations_total", "kata_agent_io_stat",
				"kata_monitor_running_shim_count"},
		},
		{
			name: "one prefix excludes own metrics", query: "?filter_family=kata_hypervisor",
			wantPrefixes: []string{"kata_hypervisor"},
			want:         []string{"kata_hypervisor_fds"},
			absent:       []string{"kata_shim_rpc_durations_total", "kata_agent_io_stat", "kata_monitor_running_shim_count"},
		},
		{
			name: "several prefixes trimmed, empty items ignored", query: "?filter_family=%20kata_shim%20,,kata_agent,",
			wantPrefixes: []string{"kata_shim", "kata_agent"},
			want:         []string{"kata_shim_rpc_durations_total", "kata_agent_io_stat"},
			absent:       []string{"kata_hypervisor_fds", "kata_monitor_running_shim_count"},
		},
		{
			name: "only empty items means no filter", query: "?filter_family=,,",
			want: []string{"kata_hypervisor_fds", "kata_monitor_running_shim_count"},
		},
		{
			name: "kata_monitor prefix reaches the forwarder only", query: "?filter_family=kata_monitor",
			wantPrefixes: []string{"kata_monitor"},
			absent:       []string{"kata_monitor_running_shim_count", "kata_hypervisor_fds"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, DefaultConfig(), nil)
			w := do(t, env.api.Handler(), http.MethodGet, "/metrics"+tt.query, nil)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			assert.Equal(t, textContentType+"; escaping=underscores", w.Header().Get("Content-Type"))
			require.Len(t, env.metrics.prefixes, 1)
			assert.Equal(t, tt.wantPrefixes, env.metrics.prefixes[0])
			names := familyNames(t, w.Body.String())
			for _, n := range tt.want {
				assert.True(t, names[n], "missing family %s", n)
			}
			for _, n := range tt.absent {
				assert.False(t, names[n], "unexpected family %s", n)
			}
			assert.Empty(t, env.shims.Requested(), "merged /metrics must not call shims directly")
		})
	}
}

func TestMetricsGzip(t *testing.T) {
	tests := []struct {
		name     string
		encoding string
		wantGzip bool
	}{
		{"none", "", false},
		{"gzip", "gzip", true},
		{"list", "br, gzip;q=0.5", true},
		{"star", "*", false},
		{"gzip refused", "gzip;q=0, *", false},
		{"identity only", "identity", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, w := getMetrics(t, "Accept-Encoding", tt.encoding)
			body := w.Body.Bytes()
			if !tt.wantGzip {
				assert.Empty(t, w.Header().Get("Content-Encoding"))
				assert.True(t, familyNames(t, string(body))["kata_hypervisor_fds"])
				return
			}
			assert.Equal(t, "gzip", w.Header().Get("Content-Encoding"))
			zr, err := gzip.NewReader(bytes.NewReader(body))
			require.NoError(t, err)
			plain, err := io.ReadAll(zr)
			require.NoError(t, err)
			assert.True(t, familyNames(t, string(plain))["kata_hypervisor_fds"])
		})
	}
}

func TestMetricsProtobuf(t *testing.T) {
	env := newTestEnv(t, DefaultConfig(), nil)
	h := http.Header{}
	h.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3")
	w := do(t, env.api.Handler(), http.MethodGet, "/metrics", h)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	ct := w.Header().Get("Content-Type")
	require.Equal(t, expfmt.TypeProtoDelim, expfmt.Format(ct).FormatType(), ct)

	dec := expfmt.NewDecoder(bytes.NewReader(w.Body.Bytes()), expfmt.Format(ct))
	got := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		got[mf.GetName()] = &mf
	}
	require.Contains(t, got, "kata_hypervisor_fds")
	require.Contains(t, got, "kata_monitor_running_shim_count")
	fds := got["kata_hypervisor_fds"]
	assert.Equal(t, dto.MetricType_GAUGE, fds.GetType())
	require.Len(t, fds.GetMetric(), 2)
	var sum float64
	for _, m := range fds.GetMetric() {
		sum += m.GetGauge().GetValue()
	}
	assert.Equal(t, 49.0, sum)
}

func TestMetricsErrors(t *testing.T) {
	t.Run("forwarder failure is 503", func(t *testing.T) {
		env := newTestEnv(t, DefaultConfig(), nil)
		env.metrics.err = errors.New("context canceled")
		w := do(t, env.api.Handler(), http.MethodGet, "/metrics", nil)
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	})
	t.Run("no gatherer serves shims only", func(t *testing.T) {
		env := newTestEnv(t, DefaultConfig(), func(d *Deps) { d.Gatherer = nil })
		w := do(t, env.api.Handler(), http.MethodGet, "/metrics", nil)
		require.Equal(t, http.StatusOK, w.Code)
		names := familyNames(t, w.Body.String())
		assert.True(t, names["kata_hypervisor_fds"])
		assert.False(t, names["kata_monitor_running_shim_count"])
	})
}

func TestMetricsSandbox(t *testing.T) {
	tests := []struct {
		name     string
		query    string
		shimErr  error
		wantCode int
		wantBody string
		wantShim bool
	}{
		{name: "ok", query: "?sandbox=" + idA, wantCode: http.StatusOK, wantBody: shimExposition, wantShim: true},
		{name: "missing", query: "?sandbox=", wantCode: http.StatusBadRequest, wantBody: "missing sandbox parameter\n"},
		{name: "unknown", query: "?sandbox=nope", wantCode: http.StatusNotFound, wantBody: "sandbox not found\n"},
		{name: "shim down", query: "?sandbox=" + idB, shimErr: errShimDown, wantCode: http.StatusBadGateway, wantShim: true},
		{name: "sandbox wins over filter", query: "?filter_family=x&sandbox=" + idA, wantCode: http.StatusOK, wantBody: shimExposition, wantShim: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, DefaultConfig(), nil)
			env.shims.err = tt.shimErr
			w := do(t, env.api.Handler(), http.MethodGet, "/metrics"+tt.query, nil)
			assert.Equal(t, tt.wantCode, w.Code)
			if tt.wantBody != "" {
				assert.Equal(t, tt.wantBody, w.Body.String())
			}
			if tt.wantCode == http.StatusOK {
				assert.Equal(t, "text/plain; version=0.0.4", w.Header().Get("Content-Type"))
			}
			assert.Equal(t, tt.wantShim, len(env.shims.Requested()) == 1)
			assert.Empty(t, env.metrics.prefixes, "?sandbox must not ask the forwarder")
		})
	}
}

// TestMetricsSandboxBufferReuse checks the pooled buffer does not leak one
// response into the next.
func TestMetricsSandboxBufferReuse(t *testing.T) {
	env := newTestEnv(t, DefaultConfig(), nil)
	env.shims.metrics = strings.Repeat("x 1\n", 1000)
	w := do(t, env.api.Handler(), http.MethodGet, "/metrics?sandbox="+idA, nil)
	require.Equal(t, 4000, w.Body.Len())
	env.shims.metrics = "y 2\n"
	w = do(t, env.api.Handler(), http.MethodGet, "/metrics?sandbox="+idA, nil)
	assert.Equal(t, "y 2\n", w.Body.String())
}

// TestAcceptEncoding: gzip is negotiated by gzhttp; a list may span several
// header lines; "*" alone is answered with identity.
func TestAcceptEncoding(t *testing.T) {
	tests := []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"deflate", "gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.001"}, true},
		{[]string{"gzip;q=abc"}, false},
		{[]string{"*;q=0"}, false},
		{[]string{"*"}, false},
		{[]string{"gzip;q=0", "*"}, false},
		{[]string{"br"}, false},
		{[]string{"zstd, br"}, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.values, "|"), func(t *testing.T) {
			env := newTestEnv(t, DefaultConfig(), nil)
			for _, target := range []string{"/metrics", "/metrics?filter_family=kata_", "/metrics?sandbox=" + idA, "/metrics/self", "/sandboxes"} {
				w := do(t, env.api.Handler(), http.MethodGet, target, http.Header{"Accept-Encoding": tt.values})
				require.Equal(t, http.StatusOK, w.Code, target)
				assert.Equal(t, tt.want, w.Header().Get("Content-Encoding") == "gzip", target)
				assert.Equal(t, []string{"Accept-Encoding"}, w.Header().Values("Vary"), target)
			}
		})
	}
}

// FuzzAcceptEncoding: any Accept-Encoding gets a 200 whose body decodes to
// the same exposition; gzip only when the client named it, and, when the
// header is well-formed and names gzip once, exactly when its weight is
// above 0.
func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*;q=0.5, identity", ";;,,=", "gzip;q=1e400", "GZip ; Q=0.5"} {
		f.Add(s)
	}
	env := newTestEnv(f, DefaultConfig(), nil)
	plain := shimPart(do(f, env.api.Handler(), http.MethodGet, "/metrics", nil).Body.String())
	f.Fuzz(func(t *testing.T, s string) {
		w := do(t, env.api.Handler(), http.MethodGet, "/metrics", http.Header{"Accept-Encoding": {s}})
		require.Equal(t, http.StatusOK, w.Code)
		body := w.Body.String()
		switch ce := w.Header().Get("Content-Encoding"); ce {
		case "":
		case "gzip":
			if !strings.Contains(strings.ToLower(s), "gzip") {
				t.Fatalf("gzip for Accept-Encoding %q", s)
			}
			body = gunzipOne(t, w.Body.Bytes())
		default:
			t.Fatalf("Content-Encoding %q for Accept-Encoding %q", ce, s)
		}
		if q, ok := gzipWeight(s); ok && (q > 0) != (w.Header().Get("Content-Encoding") == "gzip") {
			t.Fatalf("Accept-Encoding %q weighs gzip %v; Content-Encoding %q", s, q, w.Header().Get("Content-Encoding"))
		}
		require.Equal(t, plain, shimPart(body))
	})
}

// qvalue is RFC 9110's weight, section 12.4.2.
var qvalue = regexp.MustCompile(`^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$`)

// gzipWeight reads an Accept-Encoding value as RFC 9110 section 12.5.3
// writes it (codings with an optional weight, separated by commas, blanks
// around both): the weight of gzip when the value is well-formed and
// names gzip exactly once; ok is false otherwise.
func gzipWeight(v string) (q float64, ok bool) {
	n := 0
	for _, el := range strings.Split(v, ",") {
		el = strings.Trim(el, " \t")
		if el == "" {
			continue // empty list elements are allowed (section 5.6.1)
		}
		parts := strings.Split(el, ";")
		coding := strings.Trim(parts[0], " \t")
		if coding == "" || strings.ContainsFunc(coding, func(r rune) bool { return !tchar(r) }) || len(parts) > 2 {
			return 0, false
		}
		w := 1.0
		if len(parts) == 2 {
			p := strings.Trim(parts[1], " \t")
			if len(p) < 2 || !strings.EqualFold(p[:2], "q=") || !qvalue.MatchString(p[2:]) {
				return 0, false
			}
			w, _ = strconv.ParseFloat(p[2:], 64)
		}
		if strings.EqualFold(coding, "gzip") {
			q, n = w, n+1
		}
	}
	return q, n == 1
}

// tchar reports whether r may be in an HTTP token (RFC 9110 section 5.6.2).
func tchar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

// TestMetricsNameEscapingNegotiated: the escaping term of Accept decides
// how names outside the legacy charset are written, as Prometheus 3 asks;
// a client that says nothing (Prometheus 2, curl) gets underscores.
func TestMetricsNameEscapingNegotiated(t *testing.T) {
	tests := []struct {
		name, accept string
		wantCT       string
		wantScheme   model.EscapingScheme
	}{
		{name: "no accept", wantCT: textContentType + "; escaping=underscores", wantScheme: model.UnderscoreEscaping},
		{name: "prometheus 2.42",
			accept: "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
			wantCT: textContentType + "; escaping=underscores", wantScheme: model.UnderscoreEscaping},
		{name: "prometheus 3 with UTF-8 names",
			accept: "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
			wantCT: "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8", wantScheme: model.NoEscaping},
		{name: "text 0.0.4 asking allow-utf-8", accept: "text/plain;version=0.0.4;escaping=allow-utf-8",
			wantCT: textContentType + "; escaping=allow-utf-8", wantScheme: model.NoEscaping},
		{name: "dots", accept: "text/plain;version=0.0.4;escaping=dots",
			wantCT: textContentType + "; escaping=dots", wantScheme: model.DotsEscaping},
		{name: "values", accept: "text/plain;version=1.0.0;escaping=values",
			wantCT: "text/plain; version=1.0.0; charset=utf-8; escaping=values", wantScheme: model.ValueEncodingEscaping},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, w := getMetrics(t, "Accept", tt.accept)
			assert.Equal(t, tt.wantCT, w.Header().Get("Content-Type"))
			assert.Equal(t, []model.EscapingScheme{tt.wantScheme}, env.metrics.schemes)
		})
	}
}
