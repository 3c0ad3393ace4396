package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
)

// fakeSandboxes is a fixed live set.
type fakeSandboxes struct{ byID map[string]sandbox.Sandbox }

func newFakeSandboxes(ids ...string) *fakeSandboxes {
	f := &fakeSandboxes{byID: map[string]sandbox.Sandbox{}}
	for _, id := range ids {
		f.byID[id] = sandbox.Sandbox{ID: id, Root: "/run/vc/sbs", Socket: "/run/vc/sbs/" + id + "/shim-monitor.sock"}
	}
	return f
}

func (f *fakeSandboxes) List() []sandbox.Sandbox {
	out := make([]sandbox.Sandbox, 0, len(f.byID))
	for _, sb := range f.byID {
		out = append(out, sb)
	}
	return out
}

func (f *fakeSandboxes) Get(id string) (sandbox.Sandbox, bool) {
	sb, ok := f.byID[id]
	return sb, ok
}

type fakePods map[string]cri.Pod

func (f fakePods) Lookup(id string) (cri.Pod, bool) { p, ok := f[id]; return p, ok }

type fakeStatus map[string]Status

func (f fakeStatus) Status(id string) (Status, bool) { s, ok := f[id]; return s, ok }

// fakeShims records every socket a Shim was asked for.
type fakeShims struct {
	mu        sync.Mutex
	requested []string
	metrics   string
	agentURL  string
	err       error
	// contentType is what Scrape reports ("" like a shim sending none).
	contentType string
	// debugDelay makes ServeDebug answer only after this long (a profile).
	debugDelay time.Duration
}

func (f *fakeShims) Shim(socket string) Shim {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requested = append(f.requested, socket)
	return &fakeShim{parent: f, socket: socket}
}

func (f *fakeShims) Requested() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requested)
}

type fakeShim struct {
	parent *fakeShims
	socket string
}

func (s *fakeShim) Scrape(_ context.Context, dst []byte) ([]byte, string, error) {
	if s.parent.err != nil {
		return dst[:0], "", s.parent.err
	}
	return append(dst[:0], s.parent.metrics...), s.parent.contentType, nil
}

func (s *fakeShim) AgentURL(context.Context) (string, error) {
	if s.parent.err != nil {
		return "", s.parent.err
	}
	return s.parent.agentURL, nil
}

func (s *fakeShim) ServeDebug(w http.ResponseWriter, r *http.Request, path string) {
	if d := s.parent.debugDelay; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "debug %s socket=%s seconds=%s", path, s.socket, r.URL.Query().Get("seconds"))
}

// fakeMetrics renders a fixed set of families, filtered by prefix as the
// forwarder does.
type fakeMetrics struct {
	mu       sync.Mutex
	families []string               // complete text blocks, one family each
	prefixes [][]string             // one per render
	views    int                    // View calls
	schemes  []model.EscapingScheme // per View call
	round    uint64                 // the snapshot's round number View reports
	err      error
	// hook, when set, runs first; its error is returned.
	hook func(ctx context.Context) error
}

func (f *fakeMetrics) View(ctx context.Context, scheme model.EscapingScheme, fn func(uint64, func(io.Writer, []string) error) error) error {
	f.mu.Lock()
	f.views++
	f.schemes = append(f.schemes, scheme)
	round := f.round
	f.mu.Unlock()
	if f.hook != nil {
		if err := f.hook(ctx); err != nil {
			return err
		}
	}
	if f.err != nil {
		return f.err
	}
	return fn(round, f.write)
}

func (f *fakeMetrics) write(w io.Writer, prefixes []string) error {
	f.mu.Lock()
	f.prefixes = append(f.prefixes, prefixes)
	f.mu.Unlock()
	for _, fam := range f.families {
		name := strings.Fields(fam)[2] // "# HELP name ..."
		if len(prefixes) > 0 && !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		if _, err := io.WriteString(w, fam); err != nil {
			return err
		}
	}
	return nil
}

const (
	idA = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	idB = "b2"
)

var shimFamilies = []string{
	"# HELP kata_hypervisor_fds Open FDs for hypervisor.\n# TYPE kata_hypervisor_fds gauge\n" +
		`kata_hypervisor_fds{sandbox_id="` + idA + `",cri_uid="u1",cri_name="web",cri_namespace="default"} 42` + "\n" +
		`kata_hypervisor_fds{sandbox_id="b2",cri_uid="u2",cri_name="db",cri_namespace="prod"} 7` + "\n",
	"# HELP kata_shim_rpc_durations_total Shim RPCs.\n# TYPE kata_shim_rpc_durations_total counter\n" +
		`kata_shim_rpc_durations_total{sandbox_id="b2",action="create"} 3` + "\n",
	"# HELP kata_agent_io_stat Agent IO.\n# TYPE kata_agent_io_stat gauge\n" +
		`kata_agent_io_stat{sandbox_id="b2",item="rchar"} 100` + "\n",
}

const shimExposition = "# HELP go_goroutines Goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 12\n"

// testEnv is one API with its fakes and registry.
type testEnv struct {
	api     *API
	reg     *prometheus.Registry
	shims   *fakeShims
	metrics *fakeMetrics
}

func newTestEnv(t testing.TB, cfg Config, mutate func(*Deps)) *testEnv {
	t.Helper()
	reg := prometheus.NewRegistry()
	running := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kata_monitor", Name: "running_shim_count", Help: "Running shims."})
	running.Set(2)
	reg.MustRegister(running)
	env := &testEnv{
		reg:     reg,
		shims:   &fakeShims{metrics: shimExposition, agentURL: "vsock://830455376:1024"},
		metrics: &fakeMetrics{families: shimFamilies},
	}
	deps := Deps{
		Sandboxes:  newFakeSandboxes(idA, idB),
		Pods:       fakePods{idA: {UID: "u1", Name: "web", Namespace: "default"}},
		Shims:      env.shims,
		Metrics:    env.metrics,
		Status:     fakeStatus{idA: {LastScrape: time.Unix(1700000000, 0), Duration: 12 * time.Millisecond, Series: 759}},
		Gatherer:   reg,
		Registerer: reg,
	}
	if mutate != nil {
		mutate(&deps)
	}
	a, err := New(cfg, deps)
	require.NoError(t, err)
	env.api = a
	return env
}

var errShimDown = errors.New("dial unix: connection refused")
