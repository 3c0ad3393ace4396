// Package configs is the YAML file format of kata-monitor: one struct made of
// each stage's Config, decoded strictly (an unknown key is an error naming the
// key and its line) over the defaults, then validated with the path of every
// bad field. Without a file the daemon runs on Default(): pull only, as
// upstream kata-monitor does.
package configs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"gopkg.in/yaml.v3"

	"github.com/kata-containers/kata-monitor/forwarder"
	"github.com/kata-containers/kata-monitor/httpapi"
	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/kata-containers/kata-monitor/sources/shim"
)

// Config is the whole file. Top-level names follow Prometheus's where the
// meaning is the same (global, metric_relabel_configs, remote_write).
type Config struct {
	// Global holds the scrape schedule and the labels added to pushed series.
	Global forwarder.Config `yaml:"global"`
	// SandboxRoots are the directories holding one directory per sandbox;
	// --sandbox-root overrides them.
	SandboxRoots []string `yaml:"sandbox_roots"`
	// Sandbox tunes discovery (resync interval); its roots come from SandboxRoots.
	Sandbox SandboxConfig `yaml:"sandbox"`
	// CRI is the runtime endpoint; --runtime-endpoint overrides its endpoint.
	CRI cri.Config `yaml:"cri"`
	// Shim bounds every request to a shim's monitor socket.
	Shim shim.Config `yaml:"shim"`
	// Web tunes the HTTP listener; --listen-address and --web.config.file set
	// where and how it listens.
	Web httpapi.Config `yaml:"web"`
	// WAL is the durable queue shared by all remote_write endpoints.
	WAL remotewrite.WALConfig `yaml:"wal"`
	// MetricRelabelConfigs apply to every scraped series before it is pushed.
	MetricRelabelConfigs []*relabel.Config `yaml:"metric_relabel_configs"`
	// RemoteWrite lists the endpoints to push to; empty means pull only.
	RemoteWrite []remotewrite.Config `yaml:"remote_write"`
}

// SandboxConfig is the part of sandbox.Config that is not the roots.
type SandboxConfig struct {
	ResyncInterval time.Duration `yaml:"resync_interval"`
}

// Default is the configuration used without a file: upstream's behaviour.
func Default() Config {
	sb := sandbox.DefaultConfig()
	return Config{
		Global:       forwarder.DefaultConfig(),
		SandboxRoots: append([]string(nil), sb.Roots...),
		Sandbox:      SandboxConfig{ResyncInterval: sb.ResyncInterval},
		CRI:          cri.DefaultConfig(),
		Shim:         shim.DefaultConfig(),
		Web:          httpapi.DefaultConfig(),
		WAL:          remotewrite.DefaultWALConfig(),
	}
}

// LoadFile reads and validates the file at path.
func LoadFile(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	cfg, err := Load(f)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Load decodes r strictly over Default(), applies list-item defaults and
// validates. An empty document yields Default().
func Load(r io.Reader) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	// A second document in the file is almost certainly a mistake.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return Config{}, errors.New("parse config: more than one YAML document")
	}
	cfg.applyListDefaults()
	if err := cfg.expandExternalLabels(os.LookupEnv); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c *Config) applyListDefaults() {
	for i := range c.RemoteWrite {
		c.RemoteWrite[i].ApplyDefaults()
	}
}

// SandboxWatcherConfig is the discovery config with the roots filled in.
func (c Config) SandboxWatcherConfig() sandbox.Config {
	sc := sandbox.DefaultConfig()
	sc.Roots = c.SandboxRoots
	sc.ResyncInterval = c.Sandbox.ResyncInterval
	return sc
}

// ForwarderConfig is the scheduler config with the relabel rules filled in.
func (c Config) ForwarderConfig() forwarder.Config {
	fc := c.Global
	fc.MetricRelabelConfigs = c.MetricRelabelConfigs
	return fc
}

// Validate checks every stage; errors carry the path of the field.
func (c Config) Validate() error {
	var errs []error
	wrap := func(path string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.%w", path, err))
		}
	}
	wrap("global", c.Global.Validate())
	// Roots live at the top level (sandbox_roots), the rest under sandbox:.
	if err := c.SandboxWatcherConfig().Validate(); err != nil {
		if strings.HasPrefix(err.Error(), "roots") {
			errs = append(errs, fmt.Errorf("sandbox_%w", err))
		} else {
			errs = append(errs, fmt.Errorf("sandbox.%w", err))
		}
	}
	wrap("cri", c.CRI.Validate())
	wrap("shim", c.Shim.Validate())
	wrap("web", c.Web.Validate())
	for i, rc := range c.MetricRelabelConfigs {
		if rc == nil {
			errs = append(errs, fmt.Errorf("metric_relabel_configs[%d]: empty rule", i))
			continue
		}
		if err := rc.Validate(model.UTF8Validation); err != nil {
			errs = append(errs, fmt.Errorf("metric_relabel_configs[%d]: %w", i, err))
		}
	}
	if len(c.RemoteWrite) > 0 {
		wrap("wal", c.WAL.Validate())
	}
	names := map[string]int{}
	for i, rw := range c.RemoteWrite {
		if err := rw.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("remote_write[%d].%w", i, err))
		}
		if j, dup := names[rw.Name]; dup {
			errs = append(errs, fmt.Errorf("remote_write[%d].name: %q already used by remote_write[%d]", i, rw.Name, j))
		}
		names[rw.Name] = i
	}
	return errors.Join(errs...)
}

// expandExternalLabels replaces ${VAR} and $VAR in external label values from
// the environment, so a DaemonSet can label series with the node name from
// the downward API. An unset variable is an error: an empty node label would
// merge every node's series.
func (c *Config) expandExternalLabels(lookup func(string) (string, bool)) error {
	for name, v := range c.Global.ExternalLabels {
		var missing []string
		out := os.Expand(v, func(k string) string {
			val, ok := lookup(k)
			if !ok {
				missing = append(missing, k)
			}
			return val
		})
		if len(missing) > 0 {
			return fmt.Errorf("global.external_labels.%s: environment variable %s is not set", name, missing[0])
		}
		c.Global.ExternalLabels[name] = out
	}
	return nil
}
