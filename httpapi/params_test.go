package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/httpapi/request"
)

// sandboxRoutes are the endpoints that take ?sandbox=.
var sandboxRoutes = []string{"/metrics", "/agent-url", "/debug/vars", "/debug/pprof/", "/debug/pprof/heap"}

// rawRequest builds a GET with an exact raw query, which httptest.NewRequest
// would reject or normalise.
func rawRequest(path, rawQuery string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.URL.RawQuery = rawQuery
	r.RequestURI = path + "?" + rawQuery
	return r
}

func TestHostileSandboxParam(t *testing.T) {
	tests := []struct {
		name     string
		rawQuery string
		wantCode int
	}{
		{"traversal", "sandbox=../../etc", http.StatusBadRequest},
		{"encoded slash traversal", "sandbox=..%2f..", http.StatusBadRequest},
		{"encoded dots", "sandbox=%2e%2e", http.StatusBadRequest},
		{"encoded dots and slash", "sandbox=%2e%2e%2fetc", http.StatusBadRequest},
		{"NUL", "sandbox=%00", http.StatusBadRequest},
		{"NUL suffix", "sandbox=" + idB + "%00", http.StatusBadRequest},
		{"slash", "sandbox=a/b", http.StatusBadRequest},
		{"backslash", "sandbox=a%5cb", http.StatusBadRequest},
		{"newline", "sandbox=a%0ab", http.StatusBadRequest},
		{"invalid utf-8", "sandbox=%ff%fe", http.StatusBadRequest},
		{"unicode printable", "sandbox=" + url.QueryEscape("сэндбокс-☃"), http.StatusNotFound},
		{"unicode format char", "sandbox=" + url.QueryEscape("b\u200e2"), http.StatusBadRequest},
		{"too long id", "sandbox=" + strings.Repeat("a", 257), http.StatusBadRequest},
		{"10 KB", "sandbox=" + strings.Repeat("a", 10<<10), http.StatusRequestURITooLong},
		{"64 KB", "sandbox=" + strings.Repeat("a", 64<<10), http.StatusRequestURITooLong},
		{"bad escape", "sandbox=%zz", http.StatusBadRequest},
		{"twice", "sandbox=" + idA + "&sandbox=" + idB, http.StatusBadRequest},
		{"missing", "", http.StatusBadRequest},
		{"empty", "sandbox=", http.StatusBadRequest},
		{"unknown", "sandbox=deadbeef", http.StatusNotFound},
		{"html", "sandbox=" + url.QueryEscape("<script>alert(1)</script>"), http.StatusBadRequest},
	}
	for _, route := range sandboxRoutes {
		for _, tt := range tests {
			if route == "/metrics" && (tt.name == "missing") {
				continue // /metrics without sandbox is the merged exposition
			}
			t.Run(route+"/"+tt.name, func(t *testing.T) {
				env := newTestEnv(t, DefaultConfig(), nil)
				w := httptest.NewRecorder()
				env.api.Handler().ServeHTTP(w, rawRequest(route, tt.rawQuery))
				assert.Equal(t, tt.wantCode, w.Code, w.Body.String())
				assert.Empty(t, env.shims.Requested(), "no shim may be asked for a refused id")
				assert.NotContains(t, w.Body.String(), "<script>")
				assert.NotContains(t, w.Body.String(), "etc")
			})
		}
	}
}

// TestSandboxParamReachesShimBySocket checks that a valid id reaches the shim
// through the live set's socket, not a path built from the input.
func TestSandboxParamReachesShimBySocket(t *testing.T) {
	env := newTestEnv(t, DefaultConfig(), nil)
	w := httptest.NewRecorder()
	env.api.Handler().ServeHTTP(w, rawRequest("/agent-url", "sandbox="+idB))
	require.Equal(t, http.StatusOK, w.Code)
	sb, _ := newFakeSandboxes(idB).Get(idB)
	assert.Equal(t, []string{sb.Socket}, env.shims.Requested())
}

// FuzzSandboxParam drives the query-string handling of every sandbox route:
// never a 5xx, and a shim is only ever asked for with a socket of the live
// set after the id passed validation.
func FuzzSandboxParam(f *testing.F) {
	for _, s := range []string{
		"sandbox=" + idA, "sandbox=../../etc", "sandbox=..%2f..", "sandbox=%2e%2e", "sandbox=%00",
		"sandbox=a/b", "sandbox=%zz", "sandbox=b2&sandbox=b2", "filter_family=kata,&sandbox=b2", ";;&&==",
	} {
		f.Add(s, uint8(0))
	}
	env := newTestEnv(f, DefaultConfig(), nil)
	live := map[string]bool{}
	for _, sb := range newFakeSandboxes(idA, idB).List() {
		live[sb.Socket] = true
	}
	f.Fuzz(func(t *testing.T, rawQuery string, route uint8) {
		path := sandboxRoutes[int(route)%len(sandboxRoutes)]
		before := len(env.shims.Requested())
		w := httptest.NewRecorder()
		env.api.Handler().ServeHTTP(w, rawRequest(path, rawQuery))
		if w.Code >= 500 {
			t.Fatalf("%s?%s: %d %s", path, rawQuery, w.Code, w.Body.String())
		}
		requested := env.shims.Requested()[before:]
		if len(requested) == 0 {
			return
		}
		q, err := url.ParseQuery(rawQuery)
		if err != nil || len(q["sandbox"]) != 1 || !request.ValidSandboxID(q.Get("sandbox")) {
			t.Fatalf("%s?%q reached a shim with an invalid id", path, rawQuery)
		}
		for _, s := range requested {
			if !live[s] {
				t.Fatalf("shim asked for %q, not in the live set", s)
			}
		}
	})
}
