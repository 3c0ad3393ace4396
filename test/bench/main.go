// Command bench is the benchmark harness (`make bench`): it starts a fake node
// of N sandboxes serving the shared 759-series exposition, runs the real
// kata-monitor binary against it pushing into a real VictoriaMetrics, and
// measures pull latency, push cost, memory and catch-up speed. Results go to
// stdout as a table and to $BENCH_OUT/results.{md,csv}.
//
// Knobs (environment): BENCH_SANDBOXES (10,50,200,500), BENCH_INTERVAL (5s),
// BENCH_PUSH_SECONDS (60), BENCH_PULL_REQUESTS (100), BENCH_CATCHUP_SANDBOXES
// (200), BENCH_OUTAGE_ROUNDS (240: one hour of 15 s rounds, produced at a 1 s
// interval; BENCH_CATCHUP=0 skips the catch-up run, BENCH_SANDBOXES=none runs only it), BENCH_OUT (docs/bench),
// BENCH_BIN (bin/kata-monitor: another binary to compare, e.g. a baseline),
// BENCH_WIRE=1 (only the wire bandwidth per remote write encoding, at
// BENCH_WIRE_SANDBOXES=200, measured by a counting proxy in front of the
// receiver: wire.go; BENCH_WIRE_ONLY=zstd runs the variants whose name
// contains it), BENCH_CPUPROFILE=<file> (a CPU profile of the daemon in
// steady state, from four intervals after its start to the end of the push
// window: the daemon is stopped there and the pulls are skipped; use one
// size per run, each run writes the same file).
//
// Self-metrics are read from /metrics/self (falling back to /metrics for
// binaries without it), so observing the daemon costs no shim scrape and
// no 30 MiB response.
package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kata-containers/kata-monitor/test/daemon"
	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
	"github.com/kata-containers/kata-monitor/test/receiver"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	n, err := strconv.Atoi(env(name, strconv.Itoa(def)))
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "bench: %s: want a positive integer, using %d\n", name, def)
		return def
	}
	return n
}

// row is one line of results.
type row struct {
	N                                      int
	Pull1P50, Pull1P99, Pull8P50, Pull8P99 time.Duration
	PullGzP50, PullGzP99                   time.Duration // 8 clients asking for gzip, as Prometheus does
	PullBytes                              int
	ShimReqPerPull                         float64
	CPUPerMillion                          float64 // CPU seconds (scrape, WAL and send) per million samples scraped, in steady state
	CPUPercent                             float64 // of one core, push only
	SamplesPerSec                          float64
	PeakRSSMiB, HeapMiB                    float64
	WALBytesPerSample, WireBytesPerSample  float64
}

func run() error {
	bin, err := filepath.Abs(env("BENCH_BIN", "bin/kata-monitor"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s missing: run `make bench` (it builds first)", bin)
	}
	interval, err := time.ParseDuration(env("BENCH_INTERVAL", "5s"))
	if err != nil {
		return fmt.Errorf("BENCH_INTERVAL: %w", err)
	}
	if env("BENCH_WIRE", "0") == "1" {
		n := envInt("BENCH_WIRE_SANDBOXES", 200)
		rs, err := wire(bin, n, interval, time.Duration(envInt("BENCH_PUSH_SECONDS", 60))*time.Second)
		if err != nil {
			return err
		}
		fmt.Print(wireReport(rs, n))
		return nil
	}
	var sizes []int
	for _, s := range strings.Split(env("BENCH_SANDBOXES", "10,50,200,500"), ",") {
		if s == "none" { // only the catch-up run
			break
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("BENCH_SANDBOXES: bad size %q", s)
		}
		sizes = append(sizes, n)
	}
	out := env("BENCH_OUT", "docs/bench")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var rows []row
	for _, n := range sizes {
		fmt.Fprintf(os.Stderr, "bench: N=%d\n", n)
		r, err := measure(bin, n, interval, time.Duration(envInt("BENCH_PUSH_SECONDS", 60))*time.Second, envInt("BENCH_PULL_REQUESTS", 100))
		if err != nil {
			return fmt.Errorf("N=%d: %w", n, err)
		}
		rows = append(rows, r)
		fmt.Fprintln(os.Stderr, formatRow(r))
	}
	var cu catchUpResult
	if env("BENCH_CATCHUP", "1") != "0" {
		cu, err = catchUp(bin, envInt("BENCH_CATCHUP_SANDBOXES", 200), envInt("BENCH_OUTAGE_ROUNDS", 240))
		if err != nil {
			return fmt.Errorf("catch-up: %w", err)
		}
	}
	return report(out, rows, cu, interval)
}

// instance is one kata-monitor process under test.
type instance struct {
	proc *daemon.Process
	addr string
	dir  string
}

func startMonitor(bin string, node *fakenode.Node, dir, cfg string) (*instance, error) {
	addr, err := daemon.FreeAddr()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "km.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "km.log"))
	if err != nil {
		return nil, err
	}
	p, err := daemon.Launch(bin, []string{"--listen-address", addr, "--runtime-endpoint", node.CRISocket,
		"--sandbox-root", node.Root, "--config", cfgPath, "--log-level", "warn"}, logf)
	if err != nil {
		return nil, err
	}
	in := &instance{proc: p, addr: addr, dir: dir}
	if err := p.WaitHealthy(addr, 30*time.Second, nil); err != nil {
		in.stop()
		return nil, fmt.Errorf("%w (log %s)", err, logf.Name())
	}
	return in, nil
}

func (in *instance) stop() { in.proc.Stop(syscall.SIGTERM, 20*time.Second) }

func (in *instance) self() selfmetrics.Values {
	v, err := selfmetrics.Fetch("http://" + in.addr + "/metrics/self")
	if err != nil || len(v) == 0 {
		v, _ = selfmetrics.Fetch("http://" + in.addr + "/metrics")
	}
	return v
}

// caughtUp waits, at most timeout, until the sender has sent every
// sample appended so far (the warm-up backlog is gone).
func (in *instance) caughtUp(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		v := in.self()
		appended, sent := v["kata_monitor_wal_samples_appended_total"], v["kata_monitor_remote_write_samples_sent_total"]
		if appended > 0 && sent >= appended {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sender behind after warm-up: appended %v, sent %v", appended, sent)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpuSeconds is the process's user+system CPU time so far.
func (in *instance) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", in.proc.Pid()))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// statusKiB reads a VmXxx field of /proc/<pid>/status.
func (in *instance) statusKiB(field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.proc.Pid()))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			v, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return v
		}
	}
	return 0
}

func pushConfig(dir, url string, interval time.Duration, maxSize string) string {
	return fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: %s
  external_labels: {node: bench}
wal:
  dir: %s
  max_size: %s
remote_write:
  - name: vm
    url: %s
    queue_config: {max_samples_per_send: 10000, min_backoff: 100ms, max_backoff: 1s}
`, interval, minDur(interval, 5*time.Second), filepath.Join(dir, "wal"), maxSize, url)
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// startRun starts one benchmark run's parts in a new temp dir (its name
// starting with prefix): a simulated node of n sandboxes and a receiver of
// kind under dir/rcv. cleanup stops them and removes dir.
func startRun(prefix string, n int, kind receiver.Kind) (dir string, node *fakenode.Node, rcv *receiver.Receiver, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, nil, nil, err
	}
	node, err = fakenode.Start(dir, n, fakeshim.Options{})
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, nil, nil, err
	}
	rcv, err = receiver.Start(context.Background(), kind, filepath.Join(dir, "rcv"), nil)
	if err != nil {
		node.Close()
		_ = os.RemoveAll(dir)
		return "", nil, nil, nil, err
	}
	return dir, node, rcv, func() {
		rcv.Stop()
		node.Close()
		_ = os.RemoveAll(dir)
	}, nil
}

func measure(bin string, n int, interval, pushFor time.Duration, pullReqs int) (row, error) {
	r := row{N: n}
	dir, node, vm, cleanup, err := startRun("kmb", n, receiver.VictoriaMetrics)
	if err != nil {
		return r, err
	}
	defer cleanup()
	profile := os.Getenv("BENCH_CPUPROFILE")
	if profile != "" {
		if profile, err = filepath.Abs(profile); err != nil {
			return r, err
		}
		// The daemon inherits the environment: its profile starts once the
		// first rounds' full parses are over (see cmd/kata-monitor/cpuprofile.go).
		os.Setenv("KATA_MONITOR_CPUPROFILE", profile)
		os.Setenv("KATA_MONITOR_CPUPROFILE_DELAY", (4 * interval).String())
	}
	in, err := startMonitor(bin, node, dir, pushConfig(dir, vm.WriteURL(), interval, "4GiB"))
	os.Unsetenv("KATA_MONITOR_CPUPROFILE")
	os.Unsetenv("KATA_MONITOR_CPUPROFILE_DELAY")
	if err != nil {
		return r, err
	}
	defer in.stop()

	// Warm up two rounds and let the sender catch up with them, then
	// measure push alone in steady state: a window that still drains the
	// warm-up backlog sends more than it scrapes and reads low per sample.
	time.Sleep(2 * interval)
	// On a loaded host the first rounds' backlog (every series sent once
	// with its metadata) can take a few intervals to drain.
	if err := in.caughtUp(max(2*interval, 60*time.Second)); err != nil {
		return r, fmt.Errorf("%w: see %s/km.log", err, dir)
	}
	s0, c0 := in.self(), in.cpuSeconds()
	time.Sleep(pushFor)
	s1, c1 := in.self(), in.cpuSeconds()
	scraped := s1["kata_monitor_wal_samples_appended_total"] - s0["kata_monitor_wal_samples_appended_total"]
	sent := s1["kata_monitor_remote_write_samples_sent_total"] - s0["kata_monitor_remote_write_samples_sent_total"]
	if scraped <= 0 || sent <= 0 {
		return r, fmt.Errorf("nothing pushed (appended %v, sent %v): see %s/km.log", scraped, sent, dir)
	}
	r.CPUPerMillion = (c1 - c0) / (scraped / 1e6)
	r.CPUPercent = 100 * (c1 - c0) / pushFor.Seconds()
	r.SamplesPerSec = sent / pushFor.Seconds()
	r.WireBytesPerSample = (s1["kata_monitor_remote_write_bytes_sent_total"] - s0["kata_monitor_remote_write_bytes_sent_total"]) / sent
	r.WALBytesPerSample = (s1["kata_monitor_wal_bytes_appended_total"] - s0["kata_monitor_wal_bytes_appended_total"]) / scraped
	if profile != "" {
		r.PeakRSSMiB = in.statusKiB("VmHWM") / 1024
		in.stop() // writes the profile; pulls would blur it
		fmt.Fprintf(os.Stderr, "bench: CPU profile of the push window in %s (pulls skipped)\n", profile)
		return r, nil
	}

	// Pull with push still running: 1 client, then 8.
	pullRounds0 := s1[`kata_monitor_rounds_total{trigger="pull"}`]
	lat1, bytes1, err := pull(in.addr, 1, pullReqs, false)
	if err != nil {
		return r, err
	}
	lat8, _, err := pull(in.addr, 8, pullReqs, false)
	if err != nil {
		return r, err
	}
	latGz, _, err := pull(in.addr, 8, pullReqs, true)
	if err != nil {
		return r, err
	}
	s2 := in.self()
	r.Pull1P50, r.Pull1P99 = pct(lat1, 50), pct(lat1, 99)
	r.Pull8P50, r.Pull8P99 = pct(lat8, 50), pct(lat8, 99)
	r.PullGzP50, r.PullGzP99 = pct(latGz, 50), pct(latGz, 99)
	r.PullBytes = bytes1
	r.ShimReqPerPull = float64(n) * (s2[`kata_monitor_rounds_total{trigger="pull"}`] - pullRounds0) / float64(len(lat1)+len(lat8)+len(latGz))
	r.PeakRSSMiB = in.statusKiB("VmHWM") / 1024
	r.HeapMiB = s2["kata_monitor_go_memstats_heap_alloc_bytes"] / (1 << 20)
	return r, nil
}

// pull runs total /metrics requests over `clients` concurrent clients; with
// gz the client asks for gzip and decompresses (its time counts).
func pull(addr string, clients, total int, gz bool) ([]time.Duration, int, error) {
	tr := &http.Transport{DisableCompression: !gz, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	var (
		mu    sync.Mutex
		lat   []time.Duration
		size  int
		first error
		wg    sync.WaitGroup
	)
	per := total / clients
	if per == 0 {
		per = 1
	}
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < per; j++ {
				t := time.Now()
				resp, err := c.Get("http://" + addr + "/metrics")
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
				nb, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(t)
				mu.Lock()
				lat = append(lat, d)
				size = int(nb)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, size, first
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

// catchUpResult is the drain after a receiver outage.
type catchUpResult struct {
	N, Rounds      int
	Backlog        float64 // samples queued during the outage
	Drain          time.Duration
	RatePerSec     float64
	ProductionRate float64 // samples/s at a 15 s interval, for the 20x target
	PeakRSSMiB     float64
	Dropped        float64
	// RSS while the WAL fills: at a quarter of the outage and at its end.
	FillRSSQuarterMiB, FillRSSEndMiB float64
}

// catchUp produces `rounds` rounds at a 1 s interval with the receiver down,
// then starts it and times the drain to an empty queue.
func catchUp(bin string, n, rounds int) (catchUpResult, error) {
	res := catchUpResult{N: n, Rounds: rounds}
	fmt.Fprintf(os.Stderr, "bench: catch-up N=%d, %d rounds of outage\n", n, rounds)
	dir, node, vm, cleanup, err := startRun("kmc", n, receiver.VictoriaMetrics)
	if err != nil {
		return res, err
	}
	defer cleanup()
	ctx := context.Background()
	vm.Stop()
	in, err := startMonitor(bin, node, dir, pushConfig(dir, vm.WriteURL(), time.Second, "8GiB"))
	if err != nil {
		return res, err
	}
	defer in.stop()
	for {
		s := in.self()
		done := s[`kata_monitor_rounds_total{trigger="schedule"}`]
		if res.FillRSSQuarterMiB == 0 && done >= float64(rounds)/4 {
			res.FillRSSQuarterMiB = in.statusKiB("VmRSS") / 1024
		}
		if done >= float64(rounds) {
			res.FillRSSEndMiB = in.statusKiB("VmRSS") / 1024
			break
		}
		time.Sleep(time.Second)
	}
	// Stop producing so the drain is measured alone: remove the sandboxes.
	for _, id := range node.IDs() {
		_ = node.Remove(id)
	}
	s := in.self()
	res.Backlog = s["kata_monitor_wal_pending_samples"]
	sent0 := s["kata_monitor_remote_write_samples_sent_total"]
	if err := vm.Start(ctx); err != nil {
		return res, err
	}
	t0 := time.Now()
	for {
		s = in.self()
		if s["kata_monitor_wal_pending_samples"] == 0 {
			break
		}
		if time.Since(t0) > 30*time.Minute {
			return res, fmt.Errorf("drain not finished after 30m")
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.Drain = time.Since(t0)
	res.RatePerSec = (s["kata_monitor_remote_write_samples_sent_total"] - sent0) / res.Drain.Seconds()
	res.ProductionRate = float64(n) * 759 / 15
	res.PeakRSSMiB = in.statusKiB("VmHWM") / 1024
	res.Dropped = s["kata_monitor_remote_write_samples_dropped_total"] + s["kata_monitor_wal_dropped_samples_total"]
	return res, nil
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64)
}

func formatRow(r row) string {
	return fmt.Sprintf("| %d | %s / %s | %s / %s | %s / %s | %.1f | %.2f | %.2f | %.2f%% | %.0f | %.0f | %.0f | %.2f | %.2f |",
		r.N, ms(r.Pull1P50), ms(r.Pull1P99), ms(r.Pull8P50), ms(r.Pull8P99), ms(r.PullGzP50), ms(r.PullGzP99), float64(r.PullBytes)/(1<<20), r.ShimReqPerPull,
		r.CPUPerMillion, r.CPUPercent, r.SamplesPerSec, r.PeakRSSMiB, r.HeapMiB, r.WALBytesPerSample, r.WireBytesPerSample)
}

func report(out string, rows []row, cu catchUpResult, interval time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s, %d cores; scrape interval %s; each shim serves the shared 759-series exposition.\n\n",
		time.Now().UTC().Format("2006-01-02"), hostname(), nproc(), interval)
	b.WriteString("| sandboxes | pull 1 client p50 / p99 ms | pull 8 clients p50 / p99 ms | pull 8 gzip clients p50 / p99 ms | /metrics MiB | shim requests per /metrics | push CPU-s per 1M samples | push CPU % of a core | samples/s | peak RSS MiB | heap MiB | WAL bytes/sample | wire bytes/sample |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString(formatRow(r) + "\n")
	}
	if cu.N > 0 {
		fmt.Fprintf(&b, "\nCatch-up: %d sandboxes, receiver down for %d rounds (%.0f samples queued, = %d minutes of 15 s rounds); drained in %.1f s at %.0f samples/s = %.0fx the production rate of %.0f samples/s at 15 s; peak RSS %.0f MiB; dropped %.0f.\n",
			cu.N, cu.Rounds, cu.Backlog, cu.Rounds*15/60, cu.Drain.Seconds(), cu.RatePerSec, cu.RatePerSec/cu.ProductionRate, cu.ProductionRate, cu.PeakRSSMiB, cu.Dropped)
		fmt.Fprintf(&b, "RSS while the WAL filled: %.0f MiB at a quarter of the outage, %.0f MiB at its end (%+.0f%%).\n",
			cu.FillRSSQuarterMiB, cu.FillRSSEndMiB, 100*(cu.FillRSSEndMiB/cu.FillRSSQuarterMiB-1))
	}
	fmt.Print(b.String())
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, "results.csv"))
	if err != nil {
		return err
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"sandboxes", "pull1_p50_ms", "pull1_p99_ms", "pull8_p50_ms", "pull8_p99_ms", "pull8gz_p50_ms", "pull8gz_p99_ms", "metrics_bytes", "shim_requests_per_pull", "push_cpu_s_per_million", "push_cpu_percent", "samples_per_s", "peak_rss_mib", "heap_mib", "wal_bytes_per_sample", "wire_bytes_per_sample"})
	for _, r := range rows {
		_ = w.Write([]string{strconv.Itoa(r.N), ms(r.Pull1P50), ms(r.Pull1P99), ms(r.Pull8P50), ms(r.Pull8P99), ms(r.PullGzP50), ms(r.PullGzP99), strconv.Itoa(r.PullBytes),
			fmt.Sprintf("%.2f", r.ShimReqPerPull), fmt.Sprintf("%.3f", r.CPUPerMillion), fmt.Sprintf("%.2f", r.CPUPercent), fmt.Sprintf("%.0f", r.SamplesPerSec),
			fmt.Sprintf("%.1f", r.PeakRSSMiB), fmt.Sprintf("%.1f", r.HeapMiB), fmt.Sprintf("%.3f", r.WALBytesPerSample), fmt.Sprintf("%.3f", r.WireBytesPerSample)})
	}
	_ = w.Write([]string{"catchup", strconv.Itoa(cu.N), strconv.Itoa(cu.Rounds), fmt.Sprintf("%.0f", cu.Backlog), fmt.Sprintf("%.1f", cu.Drain.Seconds()), fmt.Sprintf("%.0f", cu.RatePerSec), fmt.Sprintf("%.1f", cu.RatePerSec/cu.ProductionRate), fmt.Sprintf("%.0f", cu.FillRSSQuarterMiB), fmt.Sprintf("%.0f", cu.FillRSSEndMiB)})
	w.Flush()
	return w.Error()
}

func hostname() string { h, _ := os.Hostname(); return h }

func nproc() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
