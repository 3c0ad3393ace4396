package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"

	"github.com/kata-containers/kata-monitor/test/receiver"
)

// wireVariant is one remote_write encoding measured by wire.
type wireVariant struct {
	name        string
	message     string
	compression string
	receiver    receiver.Kind
}

// wireVariants are 1.0, 2.0 and 2.0 + zstd as issue 12 asks, plus 1.0 +
// zstd, all into Prometheus 3 (the 2.0 receiver scripts/build-receiver.sh
// builds). Prometheus takes only snappy and VictoriaMetrics, which takes
// zstd, does not read 2.0: for the zstd variants the counting proxy counts
// the zstd body as it arrives, then hands Prometheus the same request
// recompressed with snappy (Written headers and status pass back), so the
// sender sees a real 2.0 receiver.
var wireVariants = []wireVariant{
	{"1.0 snappy", "prometheus.WriteRequest", "snappy", receiver.Prometheus3},
	{"2.0 snappy", "io.prometheus.write.v2.Request", "snappy", receiver.Prometheus3},
	{"1.0 zstd", "prometheus.WriteRequest", "zstd", receiver.Prometheus3},
	{"2.0 zstd", "io.prometheus.write.v2.Request", "zstd", receiver.Prometheus3},
}

// wireResult is what the receiver's side of the wire saw.
type wireResult struct {
	variant             wireVariant
	samples             float64 // kata-monitor's samples_sent_total delta
	bodyBytes, hdrBytes int64   // request bodies and request headers the receiver got
	requests            int64
	fallbacks           float64
	cpuPerMillion       float64
}

// countingProxy forwards to the receiver and counts what arrives: bodies
// as read off the connection, and the request line plus headers as
// rendered on the wire.
type countingProxy struct {
	mu                  sync.Mutex
	body, hdr, requests int64
	zdec                *zstd.Decoder
}

type countingReader struct {
	r io.ReadCloser
	n *int64
	p *countingProxy
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.mu.Lock()
	*c.n += int64(n)
	c.p.mu.Unlock()
	return n, err
}
func (c countingReader) Close() error { return c.r.Close() }

func (p *countingProxy) wrap(target string) http.Handler {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dump, _ := httputil.DumpRequest(r, false)
		p.mu.Lock()
		p.hdr += int64(len(dump))
		p.requests++
		p.mu.Unlock()
		r.Body = countingReader{r: r.Body, n: &p.body, p: p}
		if r.Header.Get("Content-Encoding") == "zstd" {
			body, err := io.ReadAll(r.Body)
			if err == nil {
				body, err = p.zdec.DecodeAll(body, nil)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = snappy.Encode(nil, body)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			r.Header.Set("Content-Encoding", "snappy")
		}
		rp.ServeHTTP(w, r)
	})
}

// wire measures, for each variant, the bytes per sample that reach the
// receiver from n sandboxes over pushFor, through a counting proxy.
func wire(bin string, n int, interval, pushFor time.Duration) ([]wireResult, error) {
	var out []wireResult
	only := os.Getenv("BENCH_WIRE_ONLY") // e.g. "zstd": variants whose name contains it
	for _, v := range wireVariants {
		if only != "" && !strings.Contains(v.name, only) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: wire %s into %s, N=%d\n", v.name, v.receiver, n)
		res, err := wireOne(bin, n, interval, pushFor, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func wireOne(bin string, n int, interval, pushFor time.Duration, v wireVariant) (wireResult, error) {
	res := wireResult{variant: v}
	dir, node, rcv, cleanup, err := startRun("kmw", n, v.receiver)
	if err != nil {
		return res, err
	}
	defer cleanup()
	zdec, err := zstd.NewReader(nil)
	if err != nil {
		return res, err
	}
	defer zdec.Close()
	p := &countingProxy{zdec: zdec}
	srv := httptest.NewServer(p.wrap(rcv.BaseURL()))
	defer srv.Close()
	cfg := pushConfig(dir, srv.URL+"/api/v1/write", interval, "4GiB")
	cfg = strings.Replace(cfg, "    queue_config:", fmt.Sprintf("    protobuf_message: %s\n    compression: %s\n    queue_config:", v.message, v.compression), 1)
	in, err := startMonitor(bin, node, dir, cfg)
	if err != nil {
		return res, err
	}
	defer in.stop()
	time.Sleep(2 * interval)
	s0, c0 := in.self(), in.cpuSeconds()
	p.mu.Lock()
	b0, h0, r0 := p.body, p.hdr, p.requests
	p.mu.Unlock()
	time.Sleep(pushFor)
	s1, c1 := in.self(), in.cpuSeconds()
	p.mu.Lock()
	res.bodyBytes, res.hdrBytes, res.requests = p.body-b0, p.hdr-h0, p.requests-r0
	p.mu.Unlock()
	res.samples = s1["kata_monitor_remote_write_samples_sent_total"] - s0["kata_monitor_remote_write_samples_sent_total"]
	res.fallbacks = s1["kata_monitor_remote_write_protocol_fallbacks_total"]
	if res.samples <= 0 {
		return res, fmt.Errorf("nothing sent: see %s/km.log", dir)
	}
	res.cpuPerMillion = (c1 - c0) / (res.samples / 1e6)
	return res, nil
}

func wireReport(rs []wireResult, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| encoding (N = %d) | receiver | body bytes/sample | with headers bytes/sample | requests | push CPU-s per 1M samples | fell back to 1.0 |\n|---|---|---|---|---|---|---|\n", n)
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.2f | %d | %.2f | %v |\n", r.variant.name, r.variant.receiver,
			float64(r.bodyBytes)/r.samples, float64(r.bodyBytes+r.hdrBytes)/r.samples, r.requests, r.cpuPerMillion, r.fallbacks > 0)
	}
	return b.String()
}
