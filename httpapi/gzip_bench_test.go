package httpapi

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// discardWriter is a ResponseWriter that counts and drops the body, so a
// benchmark measures the handler, not a growing recorder.
type discardWriter struct {
	h http.Header
	n int64
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(int)     {}
func (d *discardWriter) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return len(p), nil
}

// BenchmarkMetricsGzip is /metrics for a gzip client on a 5 MiB merged
// exposition: "fresh" compresses a new snapshot every time (the shared
// cache's miss), "cached" serves the same snapshot again (its hit),
// "filtered" compresses per request (filter_family bypasses the cache),
// "sandbox" is one shim's exposition (759 series) passed through.
func BenchmarkMetricsGzip(b *testing.B) {
	cases := []struct {
		name, target string
		newRound     bool
	}{
		{"fresh", "/metrics", true},
		{"cached", "/metrics", false},
		{"filtered", "/metrics?filter_family=kata_big", false},
		{"sandbox", "/metrics?sandbox=" + idA, false},
	}
	shim, err := os.ReadFile("../test/testdata/kata-shim-metrics.prom")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			env := newTestEnv(b, DefaultConfig(), nil)
			env.metrics.families = bigFamilies(30)
			env.shims.metrics = string(shim)
			h := env.api.Handler()
			var size int64
			for i := 0; b.Loop(); i++ {
				if c.newRound {
					env.metrics.mu.Lock()
					env.metrics.round = uint64(i + 1)
					env.metrics.mu.Unlock()
				}
				r := httptest.NewRequest(http.MethodGet, c.target, nil)
				r.Header.Set("Accept-Encoding", "gzip")
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, r)
				size = w.n
			}
			b.ReportMetric(float64(size), "gzip-bytes")
		})
	}
}
