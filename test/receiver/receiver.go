// Package receiver starts real remote-write receivers on 127.0.0.1 with their
// data under a caller-owned directory, for end-to-end tests, the demo and the
// benchmark: the Debian ones (prometheus 2.42 with
// --web.enable-remote-write-receiver, victoria-metrics 1.79) and the newer
// ones scripts/build-receiver.sh builds once into a cache (Prometheus 3, a
// remote write 2.0 receiver; VictoriaMetrics 1.151, which takes zstd).
// Nothing here is a mock: what a test reads back went through the
// receiver's own ingestion and storage.
package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kind names a receiver program.
type Kind string

const (
	// Prometheus is Debian's prometheus 2.x as a remote-write receiver. It
	// rejects out-of-order samples, so it proves per-series ordering.
	Prometheus Kind = "prometheus"
	// VictoriaMetrics is Debian's victoria-metrics single-node server.
	VictoriaMetrics Kind = "victoria-metrics"
	// Prometheus3 is Prometheus v3 (module v0.316.0) built by
	// scripts/build-receiver.sh: it takes remote write 1.0 and 2.0
	// (--web.remote-write-receiver.accepted-protobuf-messages) and answers
	// 2.0 requests with the X-Prometheus-Remote-Write-*-Written headers.
	Prometheus3 Kind = "prometheus3"
	// VictoriaMetrics151 is VictoriaMetrics v1.151.0 built by
	// scripts/build-receiver.sh: it takes Content-Encoding zstd.
	VictoriaMetrics151 Kind = "victoriametrics"
	// Mimir is Grafana Mimir in its single-binary mode (-target=all), built
	// by scripts/build-receiver.sh and started by scripts/run-receiver.sh:
	// multi-tenant (X-Scope-OrgID), per-tenant limits in DIR/runtime.yaml.
	Mimir Kind = "mimir"
	// Thanos is Thanos Receive (local TSDB, tenant header THANOS-TENANT)
	// plus Thanos Query reading it back with tenancy enforced, built by
	// scripts/build-receiver.sh and started by scripts/run-receiver.sh.
	Thanos Kind = "thanos"
)

// isDistributed reports the receivers run by scripts/run-receiver.sh.
func (k Kind) isDistributed() bool { return k == Mimir || k == Thanos }

// TenantHeader is the header naming the tenant of a write or a query ("" for
// single-tenant receivers).
func (k Kind) TenantHeader() string {
	switch k {
	case Mimir:
		return "X-Scope-OrgID"
	case Thanos:
		return "THANOS-TENANT"
	}
	return ""
}

// scriptPath locates a script of the repository's scripts/ directory.
func scriptPath(name string) (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate scripts/" + name)
	}
	return filepath.Join(filepath.Dir(self), "..", "..", "scripts", name), nil
}

// isPrometheus reports a Prometheus of any version.
func (k Kind) isPrometheus() bool { return k == Prometheus || k == Prometheus3 }

// isVictoriaMetrics reports a VictoriaMetrics of any version.
func (k Kind) isVictoriaMetrics() bool { return k == VictoriaMetrics || k == VictoriaMetrics151 }

// Binary returns the path of kind's program. The Debian ones come from
// PATH (scripts/install-deps.sh installs them); the others from
// scripts/build-receiver.sh, which prints the cached binary at once and
// builds it only when the cache lacks it (minutes: `make deps` does it
// ahead of the tests).
func Binary(kind Kind) (string, error) {
	switch kind {
	case Prometheus, VictoriaMetrics:
		p, err := exec.LookPath(string(kind))
		if err != nil {
			return "", fmt.Errorf("%s not installed (run scripts/install-deps.sh): %w", kind, err)
		}
		return p, nil
	case Prometheus3, VictoriaMetrics151, Mimir, Thanos:
		script, err := scriptPath("build-receiver.sh")
		if err != nil {
			return "", err
		}
		cmd := exec.Command("bash", script, string(kind))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("scripts/build-receiver.sh %s: %w: %s", kind, err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return lines[len(lines)-1], nil
	}
	return "", fmt.Errorf("unknown receiver kind %q", kind)
}

// Receiver is one running receiver process. Stop and Start may be called
// repeatedly to simulate outages; the data dir and port stay the same.
type Receiver struct {
	Kind Kind
	// Addr is host:port it listens on.
	Addr string
	dir  string
	port int
	// tenant, on a view from ForTenant, goes in the tenant header of queries.
	tenant string
	out    io.Writer
	bin    string
	extra  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start launches a receiver of the given kind with its data under dir and
// waits until it answers its readiness endpoint. out receives its logs (nil
// discards them).
func Start(ctx context.Context, kind Kind, dir string, out io.Writer) (*Receiver, error) {
	return StartArgs(ctx, kind, dir, out)
}

// StartArgs is Start with extra command-line flags, e.g.
// --enable-feature=type-and-unit-labels for Prometheus 3, which then stores
// the type and unit of a remote write 2.0 series' metadata as the labels
// __type__ and __unit__.
func StartArgs(ctx context.Context, kind Kind, dir string, out io.Writer, extra ...string) (*Receiver, error) {
	bin, err := Binary(kind)
	if err != nil {
		return nil, err
	}
	nPorts := 1
	if kind.isDistributed() {
		nPorts = 6 // see scripts/run-receiver.sh
		if bin, err = scriptPath("run-receiver.sh"); err != nil {
			return nil, err
		}
	}
	if out == nil {
		out = io.Discard
	}
	// The ports are free when chosen, not reserved: until the receiver
	// binds them another process may take one. Linux gives listen(:0)
	// odd ports and outgoing connections even ones, so the even ports
	// among a distributed receiver's consecutive ones (PORT+1, +3, +5)
	// are those any outgoing connection on the host may hold meanwhile.
	// A start that fails on "address already in use" is tried again on
	// new ports.
	for attempt := 1; ; attempt++ {
		port, err := choosePorts(nPorts)
		if err != nil {
			return nil, err
		}
		log := &tailWriter{max: 64 << 10}
		r := &Receiver{Kind: kind, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, port: port,
			out: io.MultiWriter(out, log), bin: bin, extra: extra}
		err = r.Start(ctx)
		if err == nil {
			r.out = out
			return r, nil
		}
		if attempt < 3 && errors.Is(err, errExitedDuringStart) && strings.Contains(log.String(), "address already in use") {
			continue
		}
		return nil, err
	}
}

// errExitedDuringStart is Start's error when the process ended before it
// was ready.
var errExitedDuringStart = errors.New("exited during start (its log went to the test output)")

// tailWriter keeps the last max bytes written to it. Concurrency-safe.
type tailWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// WriteURL is the remote-write endpoint.
func (r *Receiver) WriteURL() string {
	switch r.Kind {
	case Mimir:
		return "http://" + r.Addr + "/api/v1/push"
	case Thanos:
		return "http://" + r.Addr + "/api/v1/receive"
	}
	return "http://" + r.Addr + "/api/v1/write"
}

// BaseURL is the HTTP root of the receiver's own API (/metrics, ...).
func (r *Receiver) BaseURL() string {
	if r.Kind == Thanos {
		return "http://" + r.at(3) // receive's HTTP
	}
	return "http://" + r.Addr
}

// queryURL is the root of the Prometheus query API (/api/v1/query).
func (r *Receiver) queryURL() string {
	switch r.Kind {
	case Mimir:
		return "http://" + r.Addr + "/prometheus"
	case Thanos:
		return "http://" + r.at(1) // thanos query
	}
	return "http://" + r.Addr
}

// at is 127.0.0.1:<port+i>.
func (r *Receiver) at(i int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port+i))
}

// Dir is the directory holding the receiver's data and configuration
// files (e.g. Mimir's runtime.yaml, Thanos's limits.yaml).
func (r *Receiver) Dir() string { return r.dir }

// ForTenant returns a view of r whose queries (Export, Instant) carry
// tenant in the receiver's tenant header, so they see that tenant's series
// only. Use it for queries only; Start and Stop belong to r.
func (r *Receiver) ForTenant(tenant string) *Receiver {
	return &Receiver{Kind: r.Kind, Addr: r.Addr, dir: r.dir, port: r.port, tenant: tenant}
}

func (r *Receiver) args() []string {
	var args []string
	switch {
	case r.Kind.isDistributed():
		args = []string{r.bin, string(r.Kind), r.dir, strconv.Itoa(r.port)}
	case r.Kind.isPrometheus():
		args = []string{
			"--config.file=" + filepath.Join(r.dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(r.dir, "data"),
			"--web.listen-address=" + r.Addr,
			"--web.enable-remote-write-receiver",
			"--log.level=warn",
		}
		if r.Kind == Prometheus3 {
			// A repeatable flag: one message type per occurrence.
			args = append(args, "--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest",
				"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request")
		}
	default:
		args = []string{
			"-storageDataPath=" + filepath.Join(r.dir, "data"),
			"-httpListenAddr=" + r.Addr,
			"-search.latencyOffset=0s",
			"-loggerLevel=WARN",
		}
	}
	return append(args, r.extra...)
}

// readyURLs must all answer 200 before the receiver is ready.
func (r *Receiver) readyURLs() []string {
	switch {
	case r.Kind == Mimir:
		return []string{r.BaseURL() + "/ready"}
	case r.Kind == Thanos:
		return []string{"http://" + r.at(3) + "/-/ready", "http://" + r.at(1) + "/-/ready"}
	case r.Kind.isPrometheus():
		return []string{r.BaseURL() + "/-/ready"}
	}
	return []string{r.BaseURL() + "/health"}
}

// readyClient bounds a readiness probe: a port that accepts and never
// answers must not hang Start past its startTimeout.
var readyClient = &http.Client{Timeout: 5 * time.Second}

// ready reports whether every readiness URL answers 200.
func (r *Receiver) ready() bool {
	for _, u := range r.readyURLs() {
		resp, err := readyClient.Get(u)
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}

// Start (re)starts the process after Stop and waits until it is ready.
func (r *Receiver) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return errors.New("receiver already running")
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	// A caller may have written its own prometheus.yml (e.g. a scrape job).
	if cfgPath := filepath.Join(r.dir, "prometheus.yml"); r.Kind.isPrometheus() {
		if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(cfgPath, []byte("global:\n  scrape_interval: 15s\n"), 0o644); err != nil {
				return err
			}
		}
	}
	bin, args := r.bin, r.args()
	if r.Kind.isDistributed() {
		bin = "bash"
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = r.out, r.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.Kind, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	deadline := time.Now().Add(startTimeout)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-done:
			r.cmd = nil
			return fmt.Errorf("%s %w", r.Kind, errExitedDuringStart)
		default:
		}
		if r.ready() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s", r.Kind, startTimeout)
		}
		// Polling a child process's readiness has no event to wait on.
		time.Sleep(100 * time.Millisecond)
	}
}

// startTimeout bounds a start: Mimir needs about 17 s on an idle 2-core
// machine, several times that on a loaded one.
const startTimeout = 180 * time.Second

// Stop terminates the process group (SIGTERM, then SIGKILL after 10 s) and
// waits: run-receiver.sh's Thanos is two processes.
func (r *Receiver) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
	r.cmd = nil
}

// Series is one series read back: its labels and raw samples.
type Series struct {
	Labels     map[string]string
	Values     []float64
	Timestamps []int64
}

// Export reads back raw samples of every series matching selector within
// [start, end]. VictoriaMetrics uses /api/v1/export, after
// /internal/force_flush: it buffers ingested rows in several shards, each
// made searchable when it fills or up to 2 s later (v1.151
// lib/storage/raw_row.go, pendingRowsFlushInterval), so without it a newer
// sample of a series can be visible while an older one is not yet: a hole
// that is not there. VictoriaMetrics exports staleness markers as null:
// they are left out, as Prometheus's queries leave them out, so both
// receivers return only scraped values. Prometheus uses a range-less instant
// query over a window (`selector[window]`), which also returns raw samples.
func (r *Receiver) Export(ctx context.Context, selector string, start, end time.Time) ([]Series, error) {
	if r.Kind.isVictoriaMetrics() {
		return r.exportVM(ctx, selector, start, end)
	}
	return r.exportPrometheus(ctx, selector, start, end)
}

// exportVM is Export from VictoriaMetrics: flush, then /api/v1/export.
func (r *Receiver) exportVM(ctx context.Context, selector string, start, end time.Time) ([]Series, error) {
	if _, err := r.get(ctx, "/internal/force_flush"); err != nil {
		return nil, err
	}
	q := url.Values{"match[]": {selector}, "start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix()+1, 10)}}
	body, err := r.get(ctx, "/api/v1/export?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var out []Series
	dec := json.NewDecoder(bytes.NewReader(body))
	for dec.More() {
		var line struct {
			Metric     map[string]string `json:"metric"`
			Values     []*float64        `json:"values"`
			Timestamps []int64           `json:"timestamps"`
		}
		if err := dec.Decode(&line); err != nil {
			return nil, fmt.Errorf("decode export: %w", err)
		}
		s := Series{Labels: line.Metric}
		for i, v := range line.Values {
			if v == nil || i >= len(line.Timestamps) {
				continue // a staleness marker: Prometheus's queries do not return them either
			}
			s.Values = append(s.Values, *v)
			s.Timestamps = append(s.Timestamps, line.Timestamps[i])
		}
		out = append(out, s)
	}
	return out, nil
}

// exportPrometheus is Export from Prometheus: an instant query of
// selector[window] at end.
func (r *Receiver) exportPrometheus(ctx context.Context, selector string, start, end time.Time) ([]Series, error) {
	window := int64(end.Sub(start)/time.Second) + 1
	q := url.Values{"query": {fmt.Sprintf("%s[%ds]", selector, window)}, "time": {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)}}
	body, err := r.get(ctx, "/api/v1/query?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode query: %w", err)
	}
	var out []Series
	for _, res := range resp.Data.Result {
		s := Series{Labels: res.Metric}
		for _, v := range res.Values {
			ts, _ := v[0].(float64)
			vs, _ := v[1].(string)
			f, _ := strconv.ParseFloat(vs, 64)
			s.Timestamps = append(s.Timestamps, int64(ts*1000+0.5))
			s.Values = append(s.Values, f)
		}
		out = append(out, s)
	}
	return out, nil
}

// Instant runs an instant query and returns the label sets of the result.
func (r *Receiver) Instant(ctx context.Context, query string, at time.Time) ([]map[string]string, error) {
	q := url.Values{"query": {query}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	body, err := r.get(ctx, "/api/v1/query?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var resp struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode query: %w", err)
	}
	out := make([]map[string]string, 0, len(resp.Data.Result))
	for _, res := range resp.Data.Result {
		out = append(out, res.Metric)
	}
	return out, nil
}

// Get answers GET path (e.g. "/metrics") with the body of a 200 answer.
func (r *Receiver) Get(ctx context.Context, path string) ([]byte, error) { return r.get(ctx, path) }

func (r *Receiver) get(ctx context.Context, path string) ([]byte, error) {
	base := r.BaseURL()
	if strings.HasPrefix(path, "/api/v1/") {
		base = r.queryURL()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, err
	}
	return r.do(req, path)
}

// do sends req as this receiver's tenant (if any) and returns the body of
// a 200 answer; any other status is an error naming the method, path and
// the start of the body.
func (r *Receiver) do(req *http.Request, path string) ([]byte, error) {
	if r.tenant != "" {
		req.Header.Set(r.Kind.TenantHeader(), r.tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %.300s", req.Method, path, resp.Status, body)
	}
	return body, nil
}

// choosePorts is freePorts; a test of the harness replaces it to take a
// port between the choice and the start.
var choosePorts = freePorts

// freePorts finds n consecutive free ports and returns the first.
func freePorts(n int) (int, error) {
	for range 50 {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		ok := true
		for i := 1; i < n && ok; i++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+i)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports", n)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
