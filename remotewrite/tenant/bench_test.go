package tenant

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
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
			cfg := config.DefaultConfig()
			cfg.URL = url
			cfg.Name = "bench"
			f := false
			cfg.MetadataConfig.Send = &f
			wcfg := config.WALConfig{Dir: filepath.Join(b.TempDir(), "wal"), MaxSize: 4 << 30, Fsync: benchFsync}
			var p pusher
			var err error
			reg := prometheus.NewRegistry()
			if mode == "on" {
				cfg.Tenant = &config.TenantConfig{Label: "cri_namespace"}
				p, err = New(cfg, wcfg, nil, reg)
			} else {
				p, err = remotewrite.New(cfg, wcfg, nil, reg)
			}
			if err != nil {
				b.Fatal(err)
			}
			// Samples appended and not yet sent, over every queue.
			pending := func() float64 {
				mfs, err := reg.Gather()
				if err != nil {
					b.Fatal(err)
				}
				n := 0.0
				for _, mf := range mfs {
					sign := 0.0
					switch mf.GetName() {
					case "kata_monitor_remote_write_samples_appended_total":
						sign = 1
					case "kata_monitor_remote_write_samples_sent_total":
						sign = -1
					}
					for _, m := range mf.GetMetric() {
						n += sign * m.GetCounter().GetValue()
					}
				}
				return n
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
					// Sleeping costs no CPU; Gather does (about the same in
					// both modes), so not too often.
					time.Sleep(10 * time.Millisecond)
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

// benchRound is a round of sandboxes x seriesPer series with realistic
// labels (one sample each), all in namespace "default".
func benchRound(sandboxes, seriesPer int) []series.Series {
	out := make([]series.Series, 0, sandboxes*seriesPer)
	for sb := range sandboxes {
		id := fmt.Sprintf("%064x", sb*7919)
		for s := range seriesPer {
			out = append(out, series.Series{
				Labels: []labels.Label{
					{Name: "__name__", Value: fmt.Sprintf("kata_hypervisor_netdev_%d", s%75)},
					{Name: "cri_name", Value: fmt.Sprintf("pod-%d", sb)},
					{Name: "cri_namespace", Value: "default"},
					{Name: "cri_uid", Value: fmt.Sprintf("4c1d8a6e-0000-4000-8000-%012d", sb)},
					{Name: "interface", Value: fmt.Sprintf("eth%d", s%3)},
					{Name: "item", Value: fmt.Sprintf("item_%d", s)},
					{Name: "node", Value: "worker-1"},
					{Name: "sandbox_id", Value: id},
				},
				Samples: []series.Sample{{Timestamp: 1_700_000_000_000, Value: float64(s * sb)}},
			})
		}
	}
	return out
}

// cpuTime is the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
