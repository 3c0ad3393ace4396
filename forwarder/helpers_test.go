package forwarder

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/kata-containers/kata-monitor/test/fakeclock"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

// fakeSandboxes is an in-memory live set.
type fakeSandboxes struct {
	mu      sync.Mutex
	ids     []string
	sockets map[string]string // optional real sockets by id
	root    string            // optional sandbox root (default /run/vc/sbs)
}

func (s *fakeSandboxes) List() []sandbox.Sandbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sandbox.Sandbox, 0, len(s.ids))
	for _, id := range s.ids {
		sock := "/run/vc/sbs/" + id + "/shim-monitor.sock"
		if s.sockets[id] != "" {
			sock = s.sockets[id]
		}
		root := "/run/vc/sbs"
		if s.root != "" {
			root = s.root
		}
		out = append(out, sandbox.Sandbox{ID: id, Root: root, Socket: sock})
	}
	return out
}

func (s *fakeSandboxes) set(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = ids
}

// fakePods is an in-memory CRI cache.
type fakePods struct {
	mu   sync.Mutex
	pods map[string]cri.Pod
}

func (p *fakePods) Lookup(id string) (cri.Pod, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod, ok := p.pods[id]
	return pod, ok
}

func (p *fakePods) set(id string, pod cri.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pods == nil {
		p.pods = make(map[string]cri.Pod)
	}
	p.pods[id] = pod
}

// fakeScraper serves a body per sandbox id (from the socket path). A
// sandbox listed in hang blocks until its ctx ends; gate, when set, holds
// every scrape until closed.
type fakeScraper struct {
	mu     sync.Mutex
	bodies map[string]string
	errs   map[string]error
	types  map[string]string // Content-Type by id ("" when unset)
	hang   map[string]bool
	gate   chan struct{}
	calls  map[string]int
	forgot []string
}

func (s *fakeScraper) Forget(socket string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgot = append(s.forgot, idOf(socket))
}

func newFakeScraper() *fakeScraper {
	return &fakeScraper{bodies: map[string]string{}, errs: map[string]error{}, types: map[string]string{}, hang: map[string]bool{}, calls: map[string]int{}}
}

func idOf(socket string) string {
	if strings.HasSuffix(socket, "/shim-monitor.sock") {
		return filepath.Base(filepath.Dir(socket))
	}
	return socket
}

func (s *fakeScraper) Scrape(ctx context.Context, socket string, dst []byte) ([]byte, string, error) {
	id := idOf(socket)
	s.mu.Lock()
	s.calls[id]++
	body, err, hang, gate, ct := s.bodies[id], s.errs[id], s.hang[id], s.gate, s.types[id]
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return dst[:0], "", ctx.Err()
		}
	}
	if hang {
		<-ctx.Done()
		return dst[:0], "", ctx.Err()
	}
	s.mu.Lock()
	if e := s.errs[id]; e != nil { // set while the scrape was held
		err = e
	}
	s.mu.Unlock()
	if err != nil {
		return dst[:0], "", err
	}
	return append(dst[:0], body...), ct, nil
}

func (s *fakeScraper) set(id, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies[id] = body
	delete(s.errs, id)
}

func (s *fakeScraper) fail(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[id] = err
}

func (s *fakeScraper) callCount(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// fakeAppender records deep copies of every round and counts commits.
type fakeAppender struct {
	mu      sync.Mutex
	rounds  [][]series.Series
	md      [][]series.Metadata
	err     error
	commits int
}

func (a *fakeAppender) Commit(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.commits++
	return nil
}

func (a *fakeAppender) commitCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.commits
}

func (a *fakeAppender) Append(_ context.Context, ss []series.Series) error {
	cp := make([]series.Series, len(ss))
	for i, s := range ss {
		cp[i] = series.Series{
			Labels:   s.AppendLabels(nil),
			Samples:  append([]series.Sample(nil), s.Samples...),
			Metadata: s.Metadata,
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rounds = append(a.rounds, cp)
	return a.err
}

func (a *fakeAppender) AppendMetadata(md []series.Metadata) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.md = append(a.md, md)
}

func (a *fakeAppender) round(i int) []series.Series {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rounds[i]
}

func (a *fakeAppender) roundCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.rounds)
}

// rig is a forwarder wired to fakes.
type rig struct {
	f        *Forwarder
	sbs      *fakeSandboxes
	pods     *fakePods
	scraper  *fakeScraper
	appender *fakeAppender
	clock    *fakeclock.Clock
	reg      *prometheus.Registry
}

// rigOpt adjusts the config or the deps before New.
type rigOpt func(r *rig, c *Config, d *Deps)

// withPush gives the forwarder the rig's appender.
func withPush(r *rig, _ *Config, d *Deps) { d.Appenders = []Appender{r.appender} }

func withConfig(mod func(*Config)) rigOpt {
	return func(_ *rig, c *Config, _ *Deps) { mod(c) }
}

func newRig(t testing.TB, opts ...rigOpt) *rig {
	t.Helper()
	r := &rig{sbs: &fakeSandboxes{}, pods: &fakePods{}, scraper: newFakeScraper(), appender: &fakeAppender{},
		clock: fakeclock.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)), reg: prometheus.NewRegistry()}
	cfg := DefaultConfig()
	// A short interval keeps the jitter of scheduled rounds (real time) small.
	cfg.ScrapeInterval, cfg.ScrapeTimeout = 200*time.Millisecond, 200*time.Millisecond
	deps := Deps{Sandboxes: r.sbs, Pods: r.pods, Scraper: r.scraper, Registerer: r.reg,
		Logger: testLogger(t), Now: r.clock.Now}
	for _, o := range opts {
		o(r, &cfg, &deps)
	}
	f, err := New(cfg, deps)
	require.NoError(t, err)
	r.f = f
	return r
}

func (r *rig) pull(t testing.TB, prefixes ...string) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, r.f.WriteMetrics(context.Background(), &buf, prefixes))
	return buf.String()
}

// counter sums the samples of one of the forwarder's self-metrics; with
// reason, only the sample of that reason label. It fails when no such
// sample is registered.
func (r *rig) counter(t testing.TB, name string, reason ...string) float64 {
	t.Helper()
	var kv []string
	if len(reason) > 0 {
		kv = []string{"reason", reason[0]}
	}
	sum, n, err := selfmetrics.Sum(r.reg, name, kv...)
	require.NoError(t, err)
	if n == 0 {
		t.Fatalf("metric %s%v not registered", name, reason)
	}
	return sum
}

// serve makes the sandboxes of bodies (id -> exposition) live, each
// serving its body.
func (r *rig) serve(bodies map[string]string) {
	ids := make([]string, 0, len(bodies))
	for id, body := range bodies {
		ids = append(ids, id)
		r.scraper.set(id, body)
	}
	r.sbs.set(ids...)
}

// parseText parses a pull response the way a Prometheus client would.
func parseText(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err, "output:\n%s", text)
	return mfs
}

// seriesCount counts samples as exposition lines: one per quantile/bucket,
// plus _sum and _count for summaries and histograms.
func seriesCount(mfs map[string]*dto.MetricFamily) int {
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_SUMMARY:
				n += len(m.GetSummary().GetQuantile()) + 2
			case dto.MetricType_HISTOGRAM:
				n += len(m.GetHistogram().GetBucket()) + 2
			default:
				n++
			}
		}
	}
	return n
}

func sharedExposition(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../test/testdata/kata-shim-metrics.prom")
	require.NoError(t, err)
	return string(b)
}

func sandboxID(i int) string { return fmt.Sprintf("%064x", i+1) }

func labelsOf(ts series.Series) map[string]string {
	m := make(map[string]string, len(ts.Labels))
	for _, l := range ts.Labels {
		m[l.Name] = l.Value
	}
	return m
}

// scheduled runs one scheduled round the way Run does and returns every
// series the appender received for it: the shim series, then the own
// metrics when the rig pushes them; nil when nothing was appended.
func (r *rig) scheduled(t testing.TB) []series.Series {
	t.Helper()
	before := r.appender.roundCount()
	r.f.scheduledRound(context.Background())
	var out []series.Series
	for i := before; i < r.appender.roundCount(); i++ {
		out = append(out, r.appender.round(i)...)
	}
	return out
}
