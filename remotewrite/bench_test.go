package remotewrite

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

var cpuTime = selfmetrics.CPUTime

// BenchmarkQueueAppendOutage is Queue.Append of one round of 200 sandboxes
// (151800 samples) into a real WAL with the receiver down (no Run): encode,
// snappy, record framing, write and fsync. It reports CPU per million
// samples and the live heap after the appends, which must not grow with
// the backlog (memory flat while the WAL fills).
func BenchmarkQueueAppendOutage(b *testing.B) {
	for _, fsync := range []string{"append", "segment"} {
		b.Run("fsync="+fsync, func(b *testing.B) {
			cfg := config.DefaultConfig()
			cfg.URL = "http://127.0.0.1:9/api/v1/write"
			cfg.Name = "bench"
			cfg.ApplyDefaults()
			wcfg := config.WALConfig{Dir: filepath.Join(b.TempDir(), "wal"), MaxSize: 4 << 30, Fsync: fsync}
			q, err := New(cfg, wcfg, nil, prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			round := benchRound(200, 759)
			ctx := context.Background()
			if err := q.Append(ctx, round); err != nil { // warm the encoder buffers
				b.Fatal(err)
			}
			heap := func() float64 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return float64(ms.HeapAlloc) / (1 << 20)
			}
			h0 := heap()
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := q.Append(ctx, round); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime() - cpu0
			runtime.KeepAlive(round)
			b.ReportMetric(cpu.Seconds()/float64(b.N)/float64(len(round))*1e6, "cpu-s/Msamples")
			runtime.KeepAlive(round)
			b.ReportMetric(heap()-h0, "heap-growth-MiB")
		})
	}
}
