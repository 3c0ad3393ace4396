// Command kata-monitor serves and pushes the metrics of every Kata Containers
// sandbox on this host. Without --config it is a drop-in for upstream
// kata-monitor (pull only); a config with remote_write entries adds the
// durable push path.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/kata-containers/kata-monitor/configs"
	"github.com/kata-containers/kata-monitor/forwarder"
	"github.com/kata-containers/kata-monitor/httpapi"
	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/kata-containers/kata-monitor/sources/shim"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

const appName = "kata-monitor"

// Exit codes: 0 clean stop, 1 runtime failure, 2 bad flags or config.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line flags, named as upstream kata-monitor's.
type options struct {
	listenAddress   string
	runtimeEndpoint string
	logLevel        string
	configFile      string
	webConfigFile   string
	sandboxRoots    stringList
	showVersion     bool
	set             map[string]bool // flags given explicitly
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet(appName, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listenAddress, "listen-address", "127.0.0.1:8090", "The address to listen on for HTTP requests.")
	fs.StringVar(&o.runtimeEndpoint, "runtime-endpoint", "/run/containerd/containerd.sock", "Endpoint of CRI container runtime service.")
	fs.StringVar(&o.logLevel, "log-level", "info", "Log level of logrus (trace/debug/info/warn/error/fatal/panic).")
	fs.StringVar(&o.configFile, "config", "", "YAML config file (push, relabelling, tuning); without it kata-monitor is pull only, as upstream.")
	fs.StringVar(&o.webConfigFile, "web.config.file", "", "Path to a web configuration file enabling TLS or basic authentication on the listener (exporter-toolkit format).")
	fs.Var(&o.sandboxRoots, "sandbox-root", "Directory holding one directory per sandbox (repeatable; default /run/vc/sbs and /run/kata).")
	fs.BoolVar(&o.showVersion, "version", false, "Print version information and exit.")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, nil
}

var versionTemplate = template.Must(template.New("version").Parse(`{{.AppName}}
 Version:	{{.Version}}
 Go version:	{{.GoVersion}}
 Git commit:	{{.GitCommit}}
 OS/Arch:	{{.OS}}/{{.Arch}}
`))

func printVersion(w io.Writer) {
	_ = versionTemplate.Execute(w, map[string]string{
		"AppName": appName, "Version": version, "GoVersion": runtime.Version(),
		"GitCommit": commit, "OS": runtime.GOOS, "Arch": runtime.GOARCH,
	})
}

// parseLevel maps upstream's logrus level names onto slog levels.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace":
		return slog.LevelDebug - 4, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	case "fatal":
		return slog.LevelError + 4, nil
	case "panic":
		return slog.LevelError + 8, nil
	}
	return 0, fmt.Errorf("invalid log level %q (want trace, debug, info, warn, error, fatal or panic)", s)
}

// loadConfig reads the file (or the defaults) and lets explicit flags win.
func loadConfig(o options) (configs.Config, error) {
	cfg := configs.Default()
	if o.configFile != "" {
		var err error
		if cfg, err = configs.LoadFile(o.configFile); err != nil {
			return cfg, err
		}
	}
	if len(o.sandboxRoots) > 0 {
		cfg.SandboxRoots = o.sandboxRoots
	}
	if o.set["runtime-endpoint"] || o.configFile == "" {
		cfg.CRI.Endpoint = o.runtimeEndpoint
	}
	return cfg, cfg.Validate()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", appName, err)
		return exitConfig
	}
	if o.showVersion {
		printVersion(stdout)
		return exitOK
	}
	level, err := parseLevel(o.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", appName, err)
		return exitConfig
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if gc, ok := defaultGCPercent(os.Getenv); ok {
		debug.SetGCPercent(gc)
		logger.Debug("go GC percent set (GOGC overrides)", "percent", gc)
	}
	if _, err := setMemoryLimit(logger, memlimit.FromCgroup); err != nil {
		logger.Warn("go memory limit not set from the cgroup limit", "err", err)
	}
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid config: %v\n", appName, strings.ReplaceAll(err.Error(), "\n", "; "))
		return exitConfig
	}
	stopProfile, err := startCPUProfile(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", appName, err)
		return exitConfig
	}
	defer func() {
		if err := stopProfile(); err != nil {
			logger.Warn("cpu profile not written", "err", err)
		}
	}()
	d, err := wire(cfg, o, logger)
	if err != nil {
		logger.Error("start failed", "err", err)
		return exitFail
	}
	logger.Info("kata-monitor started", "version", version, "listen_address", o.listenAddress,
		"sandbox_roots", cfg.SandboxRoots, "runtime_endpoint", cfg.CRI.Endpoint, "remote_write", len(cfg.RemoteWrite))
	if err := d.run(ctx); err != nil {
		logger.Error("stopped on error", "err", err)
		return exitFail
	}
	logger.Info("kata-monitor stopped")
	return exitOK
}

// daemon is every component, built but not started.
type daemon struct {
	opts    options
	watcher *sandbox.Watcher
	pods    *cri.Cache
	shims   *shim.Pool
	queues  []*remotewrite.Queue
	fwd     *forwarder.Forwarder
	api     *httpapi.API
}

func wire(cfg configs.Config, o options, logger *slog.Logger) (*daemon, error) {
	reg := prometheus.NewRegistry()
	// Upstream exposes its own Go runtime metrics as kata_monitor_go_* / kata_monitor_process_*.
	self := prometheus.WrapRegistererWithPrefix("kata_monitor_", reg)
	self.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	d := &daemon{opts: o}
	var err error
	if d.watcher, err = sandbox.New(cfg.SandboxWatcherConfig(), logger.With("component", "sandbox"), reg); err != nil {
		return nil, fmt.Errorf("sandbox discovery: %w", err)
	}
	if d.pods, err = cri.New(cfg.CRI, logger.With("component", "cri"), reg); err != nil {
		return nil, fmt.Errorf("cri: %w", err)
	}
	if d.shims, err = shim.NewPool(cfg.Shim, reg); err != nil {
		return nil, fmt.Errorf("shim client: %w", err)
	}
	var appenders []forwarder.Appender
	for _, rw := range cfg.RemoteWrite {
		q, err := remotewrite.New(rw, cfg.WAL, logger.With("component", "remote_write"), reg,
			remotewrite.WithUserAgent(appName+"/"+version))
		if err != nil {
			d.closeQueues()
			return nil, fmt.Errorf("remote_write %q: %w", rw.Name, err)
		}
		d.queues = append(d.queues, q)
		appenders = append(appenders, q)
	}
	d.fwd, err = forwarder.New(cfg.ForwarderConfig(), forwarder.Deps{
		Sandboxes: d.watcher, Pods: d.pods, Scraper: d.shims, Appenders: appenders,
		Logger: logger.With("component", "forwarder"), Registerer: reg,
	})
	if err != nil {
		d.closeQueues()
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	d.api, err = httpapi.New(cfg.Web, httpapi.Deps{
		Sandboxes: d.watcher, Pods: d.pods, Shims: shimsAdapter{d.shims}, Metrics: d.fwd,
		Status: statusAdapter{d.fwd}, Gatherer: reg,
		Logger: logger.With("component", "http"), Registerer: reg,
	})
	if err != nil {
		d.closeQueues()
		return nil, fmt.Errorf("http api: %w", err)
	}
	return d, nil
}

func (d *daemon) closeQueues() {
	for _, q := range d.queues {
		_ = q.Close()
	}
}

// run starts every component and returns when ctx ends (after all stopped)
// or when one fails.
func (d *daemon) run(ctx context.Context) error {
	// One bounded CRI lookup before the first round, so the first pushed
	// samples already carry cri_* labels in the common case instead of
	// starting series that end one round later.
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_ = d.pods.Refresh(rctx) // the cache logs and counts its own failures
	cancel()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.watcher.Run(ctx) })
	g.Go(func() error { return d.pods.Run(ctx) })
	g.Go(func() error { return d.fwd.Run(ctx) })
	for _, q := range d.queues {
		g.Go(func() error { return q.Run(ctx) })
	}
	g.Go(func() error { return d.api.Run(ctx, d.opts.listenAddress, d.opts.webConfigFile) })
	return g.Wait()
}

type shimsAdapter struct{ p *shim.Pool }

func (a shimsAdapter) Shim(socket string) httpapi.Shim { return a.p.Client(socket) }

type statusAdapter struct{ f *forwarder.Forwarder }

func (a statusAdapter) Status(id string) (httpapi.Status, bool) {
	s, ok := a.f.Status(id)
	if !ok {
		return httpapi.Status{}, false
	}
	return httpapi.Status{LastScrape: s.LastScrape, Duration: s.Duration, Err: s.Err, Series: s.Series}, true
}
