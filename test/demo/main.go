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

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if s := os.Getenv("DEMO_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return fmt.Errorf("DEMO_SECONDS=%q: want a positive number of seconds", s)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(n)*time.Second)
		defer cancel()
	}
	sandboxes := 30
	if s := os.Getenv("DEMO_SANDBOXES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return fmt.Errorf("DEMO_SANDBOXES=%q: want a positive number", s)
		}
		sandboxes = n
	}
	bin := os.Getenv("DEMO_BIN") // the test builds its own
	if bin == "" {
		bin = "bin/kata-monitor"
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s missing: run `make demo` (it builds first)", bin)
	}

	dir, err := os.MkdirTemp("", "km")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("demo: working in %s (removed on exit)\n", dir)

	node, err := fakenode.Start(dir, sandboxes, fakeshim.Options{})
	if err != nil {
		return err
	}
	defer node.Close()
	fmt.Printf("demo: fake node with %d sandboxes under %s, fake CRI on %s\n", sandboxes, node.Root, node.CRISocket)

	vmLog, _ := os.Create(filepath.Join(dir, "victoria-metrics.log"))
	vm, err := receiver.Start(ctx, receiver.VictoriaMetrics, filepath.Join(dir, "vm"), vmLog)
	if err != nil {
		return err
	}
	defer vm.Stop()
	fmt.Printf("demo: VictoriaMetrics listening on %s (data in %s)\n", vm.Addr, filepath.Join(dir, "vm"))

	listen, err := daemon.FreeAddr()
	if err != nil {
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
`, filepath.Join(dir, "wal"), vm.WriteURL())
	cfgPath := filepath.Join(dir, "kata-monitor.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	kmLog, _ := os.Create(filepath.Join(dir, "kata-monitor.log"))
	proc, err := daemon.Launch(bin, []string{"--listen-address", listen, "--runtime-endpoint", node.CRISocket,
		"--sandbox-root", node.Root, "--config", cfgPath}, kmLog)
	if err != nil {
		return err
	}
	defer func() {
		proc.Stop(syscall.SIGTERM, 20*time.Second)
		fmt.Println("\ndemo: stopped kata-monitor, VictoriaMetrics and the fake node")
	}()

	if err := proc.WaitHealthy(listen, 30*time.Second, func() bool {
		code, _ := daemon.Get("http://"+listen+"/readyz", nil)
		return code == http.StatusOK
	}); err != nil {
		return fmt.Errorf("kata-monitor not ready (see %s): %w", kmLog.Name(), err)
	}
	// The rate query needs two rounds in VictoriaMetrics: wait for them,
	// so every URL printed below answers with data when it is printed
	// (test/demo's test fetches each once, at once).
	cpuQuery := `sum by (cri_namespace, cri_name) (rate(kata_hypervisor_proc_stat{item="utime"}[1m]))`
	fmt.Println("demo: waiting for the first two rounds to reach VictoriaMetrics (about 10s)")
	if err := waitData(ctx, vm, cpuQuery, 60*time.Second); err != nil {
		return fmt.Errorf("no data in VictoriaMetrics (see %s): %w", kmLog.Name(), err)
	}
	// Every URL printed here answers 200 with kata data (test/demo's
	// test fetches each). Debian's VictoriaMetrics
	// 1.79 has no web UI (/vmui/): its query API answers JSON, its
	// federation endpoint the text format, both readable in a browser.
	vmURL := func(path string, q url.Values) string { return vm.BaseURL() + path + "?" + q.Encode() }
	fmt.Printf(`
kata-monitor is running (config %s, log %s). Open:
  kata-monitor, sandboxes:         http://%s/sandboxes
  kata-monitor, merged metrics:    http://%s/metrics?filter_family=kata_hypervisor
  kata-monitor, own metrics:       http://%s/metrics/self
  VictoriaMetrics, CPU by pod:     %s
  VictoriaMetrics, one pod's data: %s
  VictoriaMetrics, raw samples:    %s
Ctrl-C to stop.

`, cfgPath, kmLog.Name(), listen, listen, listen,
		vmURL("/api/v1/query", url.Values{"query": {cpuQuery}}),
		vmURL("/federate", url.Values{"match[]": {`{cri_name="pod-0000"}`}}),
		vmURL("/api/v1/export", url.Values{"match[]": {`kata_shim_threads{cri_name="pod-0000"}`}}))

	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-proc.Done():
			return fmt.Errorf("kata-monitor exited (see %s)", kmLog.Name())
		case <-t.C:
			fmt.Printf("\r%s", progress(listen, vm))
		}
	}
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
