package remotewrite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// BenchmarkPushTenants is the whole push path of one endpoint for rounds of
// 20 and 200 sandboxes x 759 series in 10 namespaces: Append (relabel, encode,
// snappy, WAL) and sending to an in-process receiver
// that only drains the body, until every sample is sent. tenants=off is a
// Queue; tenants=on a Router with tenant.label cri_namespace (11 queues:
// 10 namespaces and the default tenant's, empty here). It reports CPU
// (user+system of the process) per million samples.
func BenchmarkPushTenants(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	for _, sandboxes := range []int{20, 200} {
		b.Run(fmt.Sprintf("sandboxes=%d", sandboxes), func(b *testing.B) { benchPushTenants(b, srv.URL, sandboxes) })
	}
}

func benchPushTenants(b *testing.B, url string, sandboxes int) {
	round := benchRound(sandboxes, 759)
	// One string per namespace, as the forwarder's interner hands them over.
	var namespaces []string
	for i := range 10 {
		namespaces = append(namespaces, fmt.Sprintf("ns-%d", i))
	}
	for i := range round {
		for j, l := range round[i].Labels {
			if l.Name == "cri_namespace" {
				round[i].Labels[j].Value = namespaces[(i/759)%10]
			}
		}
	}
	// Handed over in chunks of 8192 series whose labels are written into
	// one reused arena just before, as the forwarder does
	// (forwarder/push.go: pushState.build).
	const chunk = 8192
	arena := make([]labels.Label, 0, chunk*8)
	buf := make([]series.Series, 0, chunk)
	emit := func(ctx context.Context, p interface {
		Append(context.Context, []series.Series) error
	}, part []series.Series) error {
		arena, buf = arena[:0], buf[:0]
		for _, ts := range part {
			lo := len(arena)
			arena = append(arena, ts.Labels...)
			buf = append(buf, series.Series{Labels: arena[lo:len(arena):len(arena)], Samples: ts.Samples})
		}
		return p.Append(ctx, buf)
	}
	type pusher interface {
		Append(context.Context, []series.Series) error
		Run(context.Context) error
	}
	for _, mode := range []string{"off", "on"} {
		b.Run("tenants="+mode, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.URL = url
			cfg.Name = "bench"
			f := false
			cfg.MetadataConfig.Send = &f
			wcfg := WALConfig{Dir: filepath.Join(b.TempDir(), "wal"), MaxSize: 4 << 30, Fsync: benchFsync}
			var p pusher
			var pending func() int
			if mode == "on" {
				cfg.Tenant = &TenantConfig{Label: "cri_namespace"}
				r, err := NewRouter(cfg, wcfg, nil, prometheus.NewRegistry())
				if err != nil {
					b.Fatal(err)
				}
				p = r
				pending = func() int {
					r.mu.Lock()
					defer r.mu.Unlock()
					n := 0
					for _, tq := range r.tenants {
						n += int(testutil.ToFloat64(tq.q.metrics.appended) - testutil.ToFloat64(tq.q.metrics.sent))
					}
					return n
				}
			} else {
				q, err := New(cfg, wcfg, nil, prometheus.NewRegistry())
				if err != nil {
					b.Fatal(err)
				}
				p = q
				pending = func() int {
					return int(testutil.ToFloat64(q.metrics.appended) - testutil.ToFloat64(q.metrics.sent))
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() { cancel(); <-done }()
			push := func() {
				for lo := 0; lo < len(round); lo += chunk {
					if err := emit(ctx, p, round[lo:min(lo+chunk, len(round))]); err != nil {
						b.Fatal(err)
					}
				}
				for pending() > 0 {
					time.Sleep(2 * time.Millisecond) // sleeping costs no CPU
				}
			}
			push() // open the queues, warm the buffers
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				push()
			}
			cpu := cpuTime() - cpu0
			runtime.KeepAlive(round)
			b.ReportMetric(cpu.Seconds()/float64(b.N)/float64(len(round))*1e6, "cpu-s/Msamples")
		})
	}
}

var benchFsync = "segment"
