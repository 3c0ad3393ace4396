// Command demo runs kata-monitor on a simulated Kata node and pushes into a
// real VictoriaMetrics: `make demo`. It prints the URLs to open and a live
// progress line, and cleans up on Ctrl-C or after DEMO_SECONDS.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
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
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// settings are the demo's environment knobs.
type settings struct {
	seconds   int    // DEMO_SECONDS: stop after that long; 0 runs until Ctrl-C
	sandboxes int    // DEMO_SANDBOXES, default 30
	bin       string // DEMO_BIN, default bin/kata-monitor, absolute
}

// demo is one running demo: its temp dir, the simulated node, the receiver
// and kata-monitor.
type demo struct {
	dir     string
	node    *fakenode.Node
	vm      *receiver.Receiver
	listen  string // kata-monitor's address
	cfgPath string
	kmLog   *os.File
	proc    *daemon.Process
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	set, err := readSettings()
	if err != nil {
		return err
	}
	if set.seconds > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(set.seconds)*time.Second)
		defer cancel()
	}
	d := &demo{}
	defer d.close()
	if err := d.start(ctx, set); err != nil {
		return err
	}
	// The rate query needs two rounds in VictoriaMetrics: wait for them,
	// so every URL printed below answers with data when it is printed
	// (test/demo's test fetches each once, at once).
	cpuQuery := `sum by (cri_namespace, cri_name) (rate(kata_hypervisor_proc_stat{item="utime"}[1m]))`
	fmt.Println("demo: waiting for the first two rounds to reach VictoriaMetrics (about 10s)")
	if err := waitData(ctx, d.vm, cpuQuery, 60*time.Second); err != nil {
		return fmt.Errorf("no data in VictoriaMetrics (see %s): %w", d.kmLog.Name(), err)
	}
	d.printURLs(cpuQuery)
	// On a terminal the progress line rewrites itself; piped (make demo |
	// tee, a CI log) each one is a line of its own.
	format := "\r%s"
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice == 0 {
		format = "%s\n"
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.proc.Done():
			return fmt.Errorf("kata-monitor exited (see %s)", d.kmLog.Name())
		case <-t.C:
			fmt.Printf(format, progress(d.listen, d.vm))
		}
	}
}

// readSettings reads and checks the DEMO_* environment.
func readSettings() (settings, error) {
	set := settings{sandboxes: 30, bin: "bin/kata-monitor"}
	for _, v := range []struct {
		name string
		dst  *int
	}{{"DEMO_SECONDS", &set.seconds}, {"DEMO_SANDBOXES", &set.sandboxes}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return set, fmt.Errorf("%s=%q: want a positive number", v.name, s)
			}
			*v.dst = n
		}
	}
	if b := os.Getenv("DEMO_BIN"); b != "" { // the test builds its own
		set.bin = b
	}
	bin, err := filepath.Abs(set.bin)
	if err != nil {
		return set, err
	}
	if _, err := os.Stat(bin); err != nil {
		return set, fmt.Errorf("%s missing: run `make demo` (it builds first)", bin)
	}
	set.bin = bin
	return set, nil
}

// start makes the temp dir and starts the node, VictoriaMetrics and
// kata-monitor pushing into it, and waits until kata-monitor is ready.
// close undoes what start did, also after a failure.
func (d *demo) start(ctx context.Context, set settings) error {
	var err error
	if d.dir, err = os.MkdirTemp("", "km"); err != nil {
		return err
	}
	fmt.Printf("demo: working in %s (removed on exit)\n", d.dir)
	if d.node, err = fakenode.Start(d.dir, set.sandboxes, fakeshim.Options{}); err != nil {
		return err
	}
	fmt.Printf("demo: fake node with %d sandboxes under %s, fake CRI on %s\n", set.sandboxes, d.node.Root, d.node.CRISocket)
	vmLog, _ := os.Create(filepath.Join(d.dir, "victoria-metrics.log"))
	if d.vm, err = receiver.Start(ctx, receiver.VictoriaMetrics, filepath.Join(d.dir, "vm"), vmLog); err != nil {
		return err
	}
	fmt.Printf("demo: VictoriaMetrics listening on %s (data in %s)\n", d.vm.Addr, filepath.Join(d.dir, "vm"))
	if d.listen, err = daemon.FreeAddr(); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 5s
  scrape_timeout: 3s
  snapshot_max_age: 10s
  external_labels: {node: demo-node}
wal:
  dir: %s
  max_size: 256MiB
remote_write:
  - name: vm
    url: %s
`, filepath.Join(d.dir, "wal"), d.vm.WriteURL())
	d.cfgPath = filepath.Join(d.dir, "kata-monitor.yaml")
	if err := os.WriteFile(d.cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	d.kmLog, _ = os.Create(filepath.Join(d.dir, "kata-monitor.log"))
	if d.proc, err = daemon.Launch(set.bin, []string{"--listen-address", d.listen, "--runtime-endpoint", d.node.CRISocket,
		"--sandbox-root", d.node.Root, "--config", d.cfgPath}, d.kmLog); err != nil {
		return err
	}
	if err := d.proc.WaitHealthy(d.listen, 30*time.Second, func() bool {
		code, _ := daemon.Get("http://"+d.listen+"/readyz", nil)
		return code == http.StatusOK
	}); err != nil {
		return fmt.Errorf("kata-monitor not ready (see %s): %w", d.kmLog.Name(), err)
	}
	return nil
}

// close stops what start started, in reverse order, and removes the dir.
func (d *demo) close() {
	if d.proc != nil {
		d.proc.Stop(syscall.SIGTERM, 20*time.Second)
		fmt.Println("\ndemo: stopped kata-monitor, VictoriaMetrics and the fake node")
	}
	if d.vm != nil {
		d.vm.Stop()
	}
	if d.node != nil {
		d.node.Close()
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
}

// printURLs prints the URLs to open. Every one answers 200 with kata data
// (test/demo's test fetches each). Debian's VictoriaMetrics 1.79 has no
// web UI (/vmui/): its query API answers JSON, its federation endpoint the
// text format, both readable in a browser.
func (d *demo) printURLs(cpuQuery string) {
	vmURL := func(path string, q url.Values) string { return d.vm.BaseURL() + path + "?" + q.Encode() }
	fmt.Printf(`
kata-monitor is running (config %s, log %s). Open:
  kata-monitor, sandboxes:         http://%s/sandboxes
  kata-monitor, merged metrics:    http://%s/metrics?filter_family=kata_hypervisor
  kata-monitor, own metrics:       http://%s/metrics/self
  VictoriaMetrics, CPU by pod:     %s
  VictoriaMetrics, one pod's data: %s
  VictoriaMetrics, raw samples:    %s
Ctrl-C to stop.

`, d.cfgPath, d.kmLog.Name(), d.listen, d.listen, d.listen,
		vmURL("/api/v1/query", url.Values{"query": {cpuQuery}}),
		vmURL("/federate", url.Values{"match[]": {`{cri_name="pod-0000"}`}}),
		vmURL("/api/v1/export", url.Values{"match[]": {`kata_shim_threads{cri_name="pod-0000"}`}}))
}

// waitData waits until query answers at least one series in vm, or
// timeout (or ctx) ends.
func waitData(ctx context.Context, vm *receiver.Receiver, query string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		got, err := vm.Instant(ctx, query, time.Now())
		if err == nil && len(got) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: no series after %s (last error: %v)", query, timeout, err)
		case <-t.C:
		}
	}
}

// progress is the one-line status: from kata-monitor's own metrics and the
// receiver's count of stored series.
func progress(listen string, vm *receiver.Receiver) string {
	m := scrapeSelf("http://" + listen + "/metrics")
	series := "?"
	if resp, err := http.Get(vm.BaseURL() + "/api/v1/query?query=count(%7Bsandbox_id!%3D%22%22%7D)"); err == nil {
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) == nil && len(r.Data.Result) == 1 {
			series, _ = r.Data.Result[0].Value[1].(string)
		}
		resp.Body.Close()
	}
	return fmt.Sprintf("sandboxes %-4s rounds %-5s samples sent %-10s dropped %-6s queue lag %ss  series in VictoriaMetrics %s   ",
		m["kata_monitor_running_shim_count"], m["kata_monitor_rounds_total"], m["kata_monitor_remote_write_samples_sent_total"],
		m["kata_monitor_remote_write_samples_dropped_total"], m["kata_monitor_remote_write_queue_lag_seconds"], series)
}

// scrapeSelf reads kata-monitor's own metrics, zero where not yet there.
func scrapeSelf(u string) map[string]string {
	out := map[string]string{}
	v, _ := selfmetrics.Fetch(u)
	for _, k := range []string{"kata_monitor_running_shim_count", "kata_monitor_rounds_total", "kata_monitor_remote_write_samples_sent_total", "kata_monitor_remote_write_samples_dropped_total", "kata_monitor_remote_write_queue_lag_seconds"} {
		out[k] = strconv.FormatFloat(v[k], 'f', -1, 64)
	}
	return out
}
