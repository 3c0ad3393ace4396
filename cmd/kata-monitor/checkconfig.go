package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/kata-containers/kata-monitor/configs"
	"github.com/kata-containers/kata-monitor/remotewrite"
)

// checkConfig is `kata-monitor check-config FILE...`, for CI pipelines and
// configuration management, as `promtool check config`: it loads and
// validates each file exactly as the daemon would (files named by *_file
// keys must be readable), prints a short summary of each valid one on
// stdout and every problem of each invalid one on stderr. Exit 0 when all
// are valid, 2 otherwise.
func checkConfig(files []string, stdout, stderr io.Writer) int {
	if len(files) == 0 {
		fmt.Fprintf(stderr, "%s check-config: want at least one FILE\nUsage: %s check-config FILE...\n", appName, appName)
		return exitConfig
	}
	code := exitOK
	for _, f := range files {
		cfg, err := configs.LoadFile(f)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", appName, configError(f, err))
			code = exitConfig
			continue
		}
		fmt.Fprintf(stdout, "%s: valid\n%s", f, summary(cfg))
	}
	return code
}

// summary is what the daemon would do with cfg, in a few lines.
func summary(cfg configs.Config) string {
	var b strings.Builder
	g := cfg.Global
	fmt.Fprintf(&b, "  scrape: every %s (timeout %s, %d at once); pull reuses a round for %s\n",
		g.ScrapeInterval, g.ScrapeTimeout, g.Concurrency, g.SnapshotMaxAge)
	fmt.Fprintf(&b, "  sandboxes: %s; CRI %s\n", strings.Join(cfg.SandboxRoots, ", "), cfg.CRI.Endpoint)
	if len(cfg.RemoteWrite) == 0 {
		b.WriteString("  push: none (pull only)\n")
		return b.String()
	}
	fmt.Fprintf(&b, "  push: %d endpoint(s), WAL %s/<name> (%v each, fsync %s)\n", len(cfg.RemoteWrite), cfg.WAL.Dir, cfg.WAL.MaxSize, cfg.WAL.Fsync)
	for _, rw := range cfg.RemoteWrite {
		fmt.Fprintf(&b, "    %s -> %v\n", rw.Name, rw.URL)
		if t := rw.Tenant; t != nil {
			fmt.Fprintf(&b, "      tenant from label %s, sent in header %s; default tenant %q; at most %d others at once\n", t.Label, t.Header, t.Default, t.MaxTenants)
			// The tenants share one WAL, not one each: say where, and
			// that wal.max_size bounds all of them together.
			fmt.Fprintf(&b, "      one WAL for all its tenants: %s (%v in all)\n", filepath.Join(cfg.WAL.Dir, rw.Name, remotewrite.TenantWALDir), cfg.WAL.MaxSize)
		}
	}
	return b.String()
}
