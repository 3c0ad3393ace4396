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
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
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
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/tenant"
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
	code := run(signalContext(), os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(code)
}

// signalContext returns a context that ends on the first SIGINT or SIGTERM,
// which starts the shutdown (a round in flight finishes, bounded by
// scrape_timeout, then requests in flight get the flush deadline). The
// signals' default action is back before the context ends, so whoever sees
// it end (the "shutting down" log line, an operator reading it) can rely on
// a second SIGINT or SIGTERM ending the process at once, as after a SIGKILL
// (the WAL is crash-safe: docs/faults.md). A second signal already queued
// on the channel when the default came back is raised again; two sent
// microseconds apart may arrive as one (a pending signal is a bit, not a
// count, in the kernel and in the Go runtime).
//
// signal.NotifyContext with its stop in a context.AfterFunc left a window:
// the stop ran on its own goroutine, after the log line on another, and a
// second signal in between was swallowed (CI of 83e675e: exit 0 after 5 s).
func signalContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	c := make(chan os.Signal, 2)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-c
		// Once Stop returns c gets no more signals and, with no channel
		// left, the runtime's default action (exit) is back.
		signal.Stop(c)
		select {
		case s := <-c:
			_ = syscall.Kill(os.Getpid(), s.(syscall.Signal))
		default:
		}
		cancel()
	}()
	return ctx
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
	// releasePages: the binary's pages are released after startup and every
	// scrape interval (imagepages.go); false keeps them mapped.
	releasePages bool
	set          map[string]bool // flags given explicitly
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// errUsage is a flag error already explained; run prints it once with a
// pointer to --help.
func parseFlags(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet(appName, flag.ContinueOnError)
	// The flag package prints its error and the whole usage on every
	// mistake; run prints the error once instead, and --help prints usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.listenAddress, "listen-address", "127.0.0.1:8090", "The address to listen on for HTTP requests.")
	fs.StringVar(&o.runtimeEndpoint, "runtime-endpoint", "/run/containerd/containerd.sock", "Endpoint of CRI container runtime service (a unix socket: /path or unix:///path).")
	fs.StringVar(&o.logLevel, "log-level", "info", "Log level: trace, debug, info, warn, error, fatal or panic.")
	fs.StringVar(&o.configFile, "config", "", "YAML config file (push, relabelling, tuning); without it kata-monitor is pull only, as upstream. Check one with: kata-monitor check-config FILE")
	fs.StringVar(&o.webConfigFile, "web.config.file", "", "Path to a web configuration file enabling TLS or basic authentication on the listener (exporter-toolkit format).")
	fs.Var(&o.sandboxRoots, "sandbox-root", "Directory holding one directory per sandbox (repeatable; default /run/vc/sbs and /run/kata).")
	fs.BoolVar(&o.releasePages, "release-binary-pages", true, "Release the binary's code pages from the RSS after startup and every scrape interval (~10 MiB; they fault back in from the page cache when run). false keeps them mapped, e.g. for an image lazily pulled over FUSE.")
	fs.BoolVar(&o.showVersion, "version", false, "Print version information and exit.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs)
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, nil
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s [flags]\n       %s check-config FILE...\n\nFlags:\n", appName, appName)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
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
// An error names the file and every problem in it, or the flag at fault.
func loadConfig(o options) (configs.Config, error) {
	cfg := configs.Default()
	if o.configFile != "" {
		var err error
		if cfg, err = configs.LoadFile(o.configFile); err != nil {
			return cfg, configError(o.configFile, err)
		}
	}
	if len(o.sandboxRoots) > 0 {
		sc := cfg.SandboxWatcherConfig()
		sc.Roots = o.sandboxRoots
		if err := sc.Validate(); err != nil {
			var re *sandbox.RootsError
			if errors.As(err, &re) && re.Index >= 0 {
				return cfg, fmt.Errorf("--sandbox-root %s", re.Reason)
			}
			return cfg, fmt.Errorf("--sandbox-root: %w", err)
		}
		cfg.SandboxRoots = o.sandboxRoots
	}
	if o.set["runtime-endpoint"] || o.configFile == "" {
		cc := cfg.CRI
		cc.Endpoint = o.runtimeEndpoint
		if err := cc.Validate(); err != nil {
			// cri.Config.Validate wraps the endpoint's reason with its
			// key; the flag is named here instead.
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
			}
			return cfg, fmt.Errorf("--runtime-endpoint %q: %w", o.runtimeEndpoint, err)
		}
		cfg.CRI = cc
	}
	return cfg, cfg.Validate()
}

// configError says which file is at fault and lists every problem, one per
// line, so an operator fixes them all in one pass.
func configError(path string, err error) error {
	var errs configs.Errors
	if !errors.As(err, &errs) {
		return fmt.Errorf("config: %w", err) // *fs.PathError: "open FILE: reason"
	}
	problems := "1 problem"
	if len(errs) > 1 {
		problems = fmt.Sprintf("%d problems", len(errs))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: %s", path, problems)
	for _, e := range errs {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return errors.New(b.String())
}

// run is the command line: check-config, or startup then serve until ctx
// ends. It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "check-config" {
		return checkConfig(args[1:], stdout, stderr)
	}
	st, code, done := startup(args, stdout, stderr)
	if done {
		return code
	}
	return serve(ctx, st, stderr)
}

// started is what startup hands to serve.
type started struct {
	o        options
	cfg      configs.Config
	level    slog.Level
	listener net.Listener
}

// startup parses the flags and the config and opens the listener: the
// steps that fail with a usage or config exit code before anything runs.
// done is set when run must return code (--help, --version, an error).
func startup(args []string, stdout, stderr io.Writer) (st started, code int, done bool) {
	o, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return st, exitOK, true
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", appName, err, appName)
		return st, exitConfig, true
	}
	if o.showVersion {
		printVersion(stdout)
		return st, exitOK, true
	}
	level, err := parseLevel(o.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "%s: --log-level: %v\n", appName, err)
		return st, exitConfig, true
	}
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", appName, err)
		return st, exitConfig, true
	}
	// A listen address that cannot be used is a bad flag: refuse it before
	// anything starts. The listener is then handed to the server.
	listener, err := listen(o.listenAddress, o.webConfigFile)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", appName, err)
		if errors.Is(err, errListenBusy) {
			return st, exitFail, true
		}
		return st, exitConfig, true
	}
	return started{o: o, cfg: cfg, level: level, listener: listener}, 0, false
}

// serve wires the daemon on what startup opened and runs it until ctx
// ends. It returns exitFail when the daemon could not start or stopped on
// an error, exitConfig when the runtime settings are refused.
func serve(ctx context.Context, st started, stderr io.Writer) int {
	cfg, listener := st.cfg, st.listener
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: st.level}))
	stopLimit, stopProfile, err := tuneRuntime(logger)
	defer stopLimit()
	if err != nil {
		listener.Close()
		fmt.Fprintf(stderr, "%s: %v\n", appName, err)
		return exitConfig
	}
	defer func() {
		if err := stopProfile(); err != nil {
			logger.Warn("cpu profile not written", "err", err)
		}
	}()
	d, err := wire(cfg, st.o, logger)
	if err != nil {
		listener.Close()
		logger.Error("start failed", "err", err)
		return exitFail
	}
	d.listener = listener
	logger.Info("kata-monitor started", "version", version, "listen_address", listener.Addr().String(),
		"sandbox_roots", cfg.SandboxRoots, "runtime_endpoint", cfg.CRI.Endpoint, "remote_write", len(cfg.RemoteWrite))
	// The shutdown is logged as it starts, on the AfterFunc's goroutine;
	// d.run may return before that goroutine ran (nothing in flight), so
	// the end waits for it: "shutting down" always comes before
	// "kata-monitor stopped", and before the exit.
	shutdownLogged := make(chan struct{})
	stopLog := context.AfterFunc(ctx, func() {
		defer close(shutdownLogged)
		logger.Info("shutting down: a round in flight finishes (at most scrape_timeout), then requests in flight get the flush deadline; a second SIGINT or SIGTERM ends the process at once",
			"scrape_timeout", cfg.Global.ScrapeTimeout)
	})
	err = d.run(ctx)
	if !stopLog() {
		<-shutdownLogged
	}
	if err != nil {
		logger.Error("stopped on error", "err", err)
		return exitFail
	}
	logger.Info("kata-monitor stopped")
	return exitOK
}

// tuneRuntime sets the GC percent (unless GOGC is set) and the memory
// limit from the cgroup, makes the limit follow the heap (followHeap,
// unless GOMEMLIMIT is set) until stopLimit, and starts the CPU profile
// asked for in the environment, which stopProfile writes.
func tuneRuntime(logger *slog.Logger) (stopLimit func(), stopProfile func() error, err error) {
	if gc, ok := defaultGCPercent(os.Getenv); ok {
		debug.SetGCPercent(gc)
		logger.Debug("go GC percent set (GOGC overrides)", "percent", gc)
	}
	// The library logs the limit it set, or why it set none.
	_, _ = setMemoryLimit(logger, memlimit.FromCgroup)
	h := followHeap(os.Getenv, logger)
	stopProfile, err = startCPUProfile(os.Getenv)
	return h.stop, stopProfile, err
}

// daemon is every component, built but not started.
type daemon struct {
	opts     options
	listener net.Listener // bound by run before anything starts; served by api
	cfg      configs.Config
	logger   *slog.Logger
	watcher  *sandbox.Watcher
	pods     *cri.Cache
	shims    *shim.Pool
	queues   []endpoint
	fwd      *forwarder.Forwarder
	api      *httpapi.API
}

func wire(cfg configs.Config, o options, logger *slog.Logger) (*daemon, error) {
	reg := prometheus.NewRegistry()
	// Upstream exposes its own Go runtime metrics as kata_monitor_go_* / kata_monitor_process_*.
	self := prometheus.WrapRegistererWithPrefix("kata_monitor_", reg)
	self.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	d := &daemon{opts: o, cfg: cfg, logger: logger}
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
	appenders, err := d.wireQueues(reg)
	if err != nil {
		return nil, err
	}
	// Queues of endpoints no longer configured (a renamed endpoint, or a
	// URL spelled differently without name) are reported, never dropped.
	if _, err := remotewrite.ReportStranded(cfg.WAL, cfg.RemoteWrite, logger.With("component", "remote_write"), reg); err != nil {
		logger.Warn("cannot look for stranded queues under wal.dir", "err", err)
	}
	d.fwd, err = forwarder.New(cfg.ForwarderConfig(), forwarder.Deps{
		Sandboxes: d.watcher, Pods: d.pods, Scraper: d.shims, Appenders: appenders,
		Logger: logger.With("component", "forwarder"), Registerer: reg, Self: reg,
	})
	if err != nil {
		d.closeQueues()
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	d.api, err = httpapi.New(cfg.Web, httpapi.Deps{
		Sandboxes: d.watcher, Pods: d.pods, Shims: shimsAdapter{d.shims}, Metrics: d.fwd,
		Status: statusAdapter{d.fwd}, Gatherer: reg, Ready: d.ready,
		Logger: logger.With("component", "http"), Registerer: reg,
	})
	if err != nil {
		d.closeQueues()
		return nil, fmt.Errorf("http api: %w", err)
	}
	return d, nil
}

// wireQueues builds one queue (or tenant router) per remote_write endpoint
// into d.queues and returns them as the forwarder's appenders. On error it
// closes those it built; the error names the endpoint.
func (d *daemon) wireQueues(reg *prometheus.Registry) ([]forwarder.Appender, error) {
	var appenders []forwarder.Appender
	// Tenant-routed endpoints label their queues' metrics with tenant; the
	// others then carry tenant="" so every queue metric has the same label
	// names (the registry refuses a mix).
	qreg := prometheus.Registerer(reg)
	if slices.ContainsFunc(d.cfg.RemoteWrite, func(rw config.Config) bool { return rw.Tenant != nil }) {
		qreg = prometheus.WrapRegistererWith(prometheus.Labels{"tenant": ""}, reg)
	}
	rwLogger, ua := d.logger.With("component", "remote_write"), remotewrite.WithUserAgent(appName+"/"+version)
	for _, rw := range d.cfg.RemoteWrite {
		var q endpoint
		var err error
		if rw.Tenant != nil {
			q, err = tenant.New(rw, d.cfg.WAL, rwLogger, reg, ua)
		} else {
			q, err = remotewrite.New(rw, d.cfg.WAL, rwLogger, qreg, ua)
		}
		if err != nil {
			d.closeQueues()
			return nil, err // names the endpoint: remote_write "vm": ...
		}
		d.queues = append(d.queues, q)
		appenders = append(appenders, q)
	}
	return appenders, nil
}

// ready is /readyz: the listener is up (or nothing would answer), the
// sandbox roots were scanned (wire does it), every endpoint's WAL is open,
// and, when pushing, the first scrape round is done, so a new pod reports
// ready once its first round is on its way to the receivers. Pull only,
// rounds run on demand, so none is awaited.
func (d *daemon) ready() error {
	for i, q := range d.queues {
		if err := q.Ready(); err != nil {
			return fmt.Errorf("remote_write %q: %w", d.cfg.RemoteWrite[i].Name, err)
		}
	}
	if len(d.queues) > 0 {
		select {
		case <-d.fwd.FirstRoundDone():
		default:
			return errors.New("first scrape round not done yet")
		}
	}
	return nil
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
	criErr := d.pods.Refresh(rctx) // the cache logs and counts its own failures
	cancel()
	if hint := startupHint(d.cfg.SandboxRoots, d.cfg.CRI.Endpoint, criErr); hint != "" {
		d.logger.Warn("no Kata sandbox root and no CRI: is this a Kata Containers node?", "hint", hint)
	}
	g, ctx := errgroup.WithContext(ctx)
	// The queues stop after the forwarder: a scheduled round in flight at
	// shutdown finishes (bounded by scrape_timeout) and is appended and
	// committed before the WALs close. A queue that fails still stops the
	// rest through ctx (the forwarder returns, then qctx ends).
	qctx, stopQueues := context.WithCancel(context.WithoutCancel(ctx))
	defer stopQueues()
	g.Go(func() error { return d.watcher.Run(ctx) })
	g.Go(func() error { return d.pods.Run(ctx) })
	g.Go(func() error {
		defer stopQueues()
		return d.fwd.Run(ctx)
	})
	for _, q := range d.queues {
		g.Go(func() error { return q.Run(qctx) })
	}
	g.Go(func() error { return d.api.Serve(ctx, d.listener, d.opts.webConfigFile) })
	// Startup's code and tables leave the RSS as rounds begin, and the
	// first round's once it ran (imagepages.go): ~8 MiB of the binary's
	// file pages at 200 sandboxes; from then on what ran since the last
	// release, every scrape interval.
	if !d.opts.releasePages {
		d.logger.Info("the binary's pages stay mapped (--release-binary-pages=false)")
		return g.Wait()
	}
	g.Go(func() error {
		if releaseStartupPages(ctx, d.fwd.FirstRoundDone(), d.logger) {
			release := func() (int64, error) { return releaseImagePages(madviseDontNeed) }
			releasePagesEvery(ctx, imagePagesEvery(d.cfg.Global.ScrapeInterval), release, d.logger)
		}
		return nil
	})
	return g.Wait()
}

// endpoint is one remote_write endpoint: a remotewrite.Queue, or a
// tenant.Router (remotewrite/tenant) when it routes series to tenants.
type endpoint interface {
	forwarder.Appender
	forwarder.MetadataAppender
	Run(ctx context.Context) error
	Ready() error
	Close() error
}

type shimsAdapter struct{ p *shim.Pool }

func (a shimsAdapter) Shim(socket string) httpapi.Shim { return a.p.Client(socket) }

type statusAdapter struct{ f *forwarder.Forwarder }

func (a statusAdapter) Status(id string) (httpapi.Status, bool) {
	s, ok := a.f.Status(id)
	if !ok {
		return httpapi.Status{}, false
	}
	return httpapi.Status{LastScrape: s.LastScrape, Duration: s.Duration, Err: s.Err, Series: s.Series, Dropped: s.Dropped}, true
}

// startupHint says what to check when nothing on this host looks like Kata:
// no sandbox root exists and the CRI did not answer. "" when either is fine.
// kata-monitor keeps running (a root may appear with the first Kata pod).
func startupHint(roots []string, endpoint string, criErr error) string {
	if criErr == nil {
		return ""
	}
	for _, r := range roots {
		if _, err := os.Stat(r); err == nil {
			return ""
		}
	}
	return fmt.Sprintf("none of the sandbox roots %s exists and the CRI at %s did not answer (%v); "+
		"check that Kata Containers runs here (its shims create /run/vc/sbs, or /run/kata for runtime-rs, with the first pod), "+
		"that --sandbox-root names where they are, and that --runtime-endpoint is the runtime's socket "+
		"(containerd: /run/containerd/containerd.sock, CRI-O: /run/crio/crio.sock); kata-monitor keeps watching",
		strings.Join(roots, ", "), endpoint, criErr)
}
