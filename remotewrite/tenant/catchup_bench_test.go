package tenant

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// BenchmarkTenantCatchUp is a tenant-routed endpoint draining a backlog:
// 100 rounds of 20 sandboxes x 759 series in 10 namespaces written while
// the router did not run (as after an outage), then a new router sends
// them to an in-process receiver that only drains the body. Each tenant
// sends its groups one after the other, each one's acknowledgement
// written before the next is handed out. It reports the drain's wall
// time in samples per second and its CPU per million samples
// (benchFsync as BenchmarkPushTenants).
func BenchmarkTenantCatchUp(b *testing.B) {
	srv := drainReceiver(b)
	const rounds, chunk = 100, 8192
	round := benchRound(20, 759, 10)
	var wall, cpu time.Duration
	total := 0.0
	for b.Loop() {
		b.StopTimer()
		cfg := config.DefaultConfig()
		cfg.URL, cfg.Name = srv.URL, "bench"
		f := false
		cfg.MetadataConfig.Send = &f
		cfg.Tenant = &config.TenantConfig{Label: "cri_namespace"}
		wcfg := config.WALConfig{Dir: filepath.Join(b.TempDir(), "wal"), MaxSize: 4 << 30, Fsync: benchFsync}
		ctx := context.Background()
		r, err := New(cfg, wcfg, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		for range rounds {
			for lo := 0; lo < len(round); lo += chunk {
				if err := r.Append(ctx, round[lo:min(lo+chunk, len(round))]); err != nil {
					b.Fatal(err)
				}
			}
			if err := r.Commit(ctx); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
		reg := &sentCounters{Registerer: prometheus.NewRegistry()}
		if r, err = New(cfg, wcfg, nil, reg); err != nil {
			b.Fatal(err)
		}
		want := float64(rounds * len(round))
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		b.StartTimer()
		t0, cpu0 := time.Now(), cpuTime()
		go func() { done <- r.Run(runCtx) }()
		for reg.sum() < want {
			time.Sleep(time.Millisecond)
		}
		wall += time.Since(t0)
		cpu += cpuTime() - cpu0
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		total += want
		b.StartTimer()
	}
	b.ReportMetric(total/wall.Seconds(), "samples/s")
	b.ReportMetric(cpu.Seconds()/total*1e6, "cpu-s/Msamples")
}

// drainReceiver is an in-process receiver that reads each request's body
// and answers 204, closed at cleanup.
func drainReceiver(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(srv.Close)
	return srv
}
