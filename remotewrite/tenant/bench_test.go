package tenant

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// BenchmarkPushTenants is the whole push path of one endpoint for rounds of
// 20 and 200 sandboxes x 759 series in 10 namespaces, given as the
// forwarder gives them (label templates, chunks of 8192 series): Append
// (relabel, encode, snappy, WAL), Commit, and sending to an in-process
// receiver that only drains the body, until every sample is sent. tenants=off is a
// Queue; tenants=on a Router with tenant.label cri_namespace (11 queues:
// 10 namespaces and the default tenant's, empty here). It reports CPU
// (user+system of the process) per million samples.
func BenchmarkPushTenants(b *testing.B) {
	arrived := make(chan struct{}, 1) // a request was answered
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		select {
		case arrived <- struct{}{}:
		default:
		}
	}))
	defer srv.Close()
	for _, sandboxes := range []int{20, 200} {
		b.Run(fmt.Sprintf("sandboxes=%d", sandboxes), func(b *testing.B) { benchPushTenants(b, srv.URL, arrived, sandboxes) })
	}
}

// benchPushTenants pushes rounds of sandboxes x 759 series to url through
// one Queue and through a Router per namespace, in the forwarder's chunks,
// and reports CPU per million samples and the live heap. Long because the
// push and its wait for the answers are the measured step, written out
// once.
func benchPushTenants(b *testing.B, url string, arrived <-chan struct{}, sandboxes int) {
	round := benchRound(sandboxes, 759, 10)
	// Handed over in chunks of 8192 series headers in one reused buffer,
	// as the forwarder does (forwarder/push: Builder).
	const chunk = 8192
	buf := make([]series.Series, 0, chunk)
	emit := func(ctx context.Context, p interface {
		Append(context.Context, []series.Series) error
	}, part []series.Series) error {
		buf = append(buf[:0], part...)
		return p.Append(ctx, buf)
	}
	for _, mode := range []string{"off", "on"} {
		b.Run("tenants="+mode, func(b *testing.B) {
			p, reg := newBenchPusher(b, url, mode == "on")
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() { cancel(); <-done }()
			sent := 0.0 // samples sent when the round being pushed is
			push := func() {
				for lo := 0; lo < len(round); lo += chunk {
					if err := emit(ctx, p, round[lo:min(lo+chunk, len(round))]); err != nil {
						b.Fatal(err)
					}
				}
				if c, ok := p.(interface{ Commit(context.Context) error }); ok {
					if err := c.Commit(ctx); err != nil {
						b.Fatal(err)
					}
				}
				// Waiting costs no CPU; checking costs a little per queue
				// (about 2 % of a 20-sandbox round if done after every
				// answer), so it is done when answers pause for 1 ms.
				for sent += float64(len(round)); reg.sum() < sent; {
					t := time.NewTimer(10 * time.Millisecond) // the counter moves just after the answer
				quiet:
					for {
						select {
						case <-arrived:
							t.Reset(time.Millisecond)
						case <-t.C:
							break quiet
						}
					}
				}
			}
			push() // open the queues, warm the buffers
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				push()
				time.Sleep(benchGap) // idle between rounds costs no CPU
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(cpu.Seconds()/float64(b.N)/float64(len(round))*1e6, "cpu-s/Msamples")
			reportHeap(b, fmt.Sprintf("heap-%d-%s.prof", sandboxes, mode))
			runtime.KeepAlive(round)
			runtime.KeepAlive(p)
		})
	}
}

// pusher is what the benchmark drives: a Queue or a Router.
type pusher interface {
	Append(context.Context, []series.Series) error
	Run(context.Context) error
}

// newBenchPusher builds the benchmark's endpoint to url (no metadata, a
// 4 GiB WAL): a Router per cri_namespace when tenants, else one Queue.
func newBenchPusher(b *testing.B, url string, tenants bool) (pusher, *sentCounters) {
	cfg := config.DefaultConfig()
	cfg.URL = url
	cfg.Name = "bench"
	f := false
	cfg.MetadataConfig.Send = &f
	wcfg := config.WALConfig{Dir: filepath.Join(b.TempDir(), "wal"), MaxSize: 4 << 30, Fsync: benchFsync}
	var p pusher
	var err error
	reg := &sentCounters{Registerer: prometheus.NewRegistry()}
	if tenants {
		cfg.Tenant = &config.TenantConfig{Label: "cri_namespace"}
		p, err = New(cfg, wcfg, nil, reg)
	} else {
		p, err = remotewrite.New(cfg, wcfg, nil, reg)
	}
	if err != nil {
		b.Fatal(err)
	}
	return p, reg
}

// reportHeap reports the live heap between rounds (the round itself
// included: what the router keeps for gathering rounds shows here), and
// writes a heap profile named name under $BENCH_HEAP_PROFILE_DIR when set.
func reportHeap(b *testing.B, name string) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	dir := os.Getenv("BENCH_HEAP_PROFILE_DIR")
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

var benchFsync = "segment"

// benchGap is the pause after each round (BENCH_ROUND_GAP, a Go
// duration): rounds back to back hide what a round costs once per round
// at a production scrape interval, such as a tenant queue persisting its
// acknowledged position (at most once a second).
var benchGap, _ = time.ParseDuration(os.Getenv("BENCH_ROUND_GAP"))

// sentCounters is a Registerer that also keeps the samples_sent_total
// counters registered through it (one per queue), so the benchmark reads
// them without gathering the whole registry.
type sentCounters struct {
	prometheus.Registerer
	mu   sync.Mutex
	sent []prometheus.Collector
}

func (s *sentCounters) Register(c prometheus.Collector) error {
	if err := s.Registerer.Register(c); err != nil {
		return err
	}
	descs := make(chan *prometheus.Desc, 16)
	c.Describe(descs)
	close(descs)
	for d := range descs {
		if strings.Contains(d.String(), `"kata_monitor_remote_write_samples_sent_total"`) {
			s.mu.Lock()
			s.sent = append(s.sent, c)
			s.mu.Unlock()
		}
	}
	return nil
}

func (s *sentCounters) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := s.Register(c); err != nil {
			panic(err)
		}
	}
}

// sum is the samples sent by every queue so far.
func (s *sentCounters) sum() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0.0
	ch := make(chan prometheus.Metric, 1) // a counter has one metric
	for _, c := range s.sent {
		c.Collect(ch)
		var m dto.Metric
		if err := (<-ch).Write(&m); err == nil {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// benchRound is a round of sandboxes x seriesPer series (one sample each)
// as the forwarder hands them over: a label template per series index
// shared by every sandbox, with the sandbox's cri_name, cri_namespace,
// cri_uid and sandbox_id as its values; sandbox i is in namespace
// ns-<i mod namespaces>.
func benchRound(sandboxes, seriesPer, namespaces int) []series.Series {
	tmpl := make([]*series.Template, seriesPer)
	for s := range seriesPer {
		tmpl[s] = series.NewTemplate([]labels.Label{
			{Name: "__name__", Value: fmt.Sprintf("kata_hypervisor_netdev_%d", s%75)},
			{Name: "cri_name"}, {Name: "cri_namespace"}, {Name: "cri_uid"},
			{Name: "interface", Value: fmt.Sprintf("eth%d", s%3)},
			{Name: "item", Value: fmt.Sprintf("item_%d", s)},
			{Name: "node", Value: "worker-1"},
			{Name: "sandbox_id"},
		}, []int{-1, 0, 1, 2, -1, -1, -1, 3})
	}
	out := make([]series.Series, 0, sandboxes*seriesPer)
	for sb := range sandboxes {
		vals := series.NewValues(fmt.Sprintf("pod-%d", sb), fmt.Sprintf("ns-%d", sb%namespaces),
			fmt.Sprintf("4c1d8a6e-0000-4000-8000-%012d", sb), fmt.Sprintf("%064x", sb*7919))
		for s := range seriesPer {
			out = append(out, series.Series{Template: tmpl[s], Values: vals,
				Samples: []series.Sample{{Timestamp: 1_700_000_000_000, Value: float64(s * sb)}}})
		}
	}
	return out
}
