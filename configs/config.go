// Package configs is the YAML file format of kata-monitor: one struct made of
// each stage's Config, decoded strictly (an unknown key is an error naming the
// key and its line) over the defaults, then validated with the path of every
// bad field. Without a file the daemon runs on Default(): pull only, as
// upstream kata-monitor does.
package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"gopkg.in/yaml.v3"

	"github.com/kata-containers/kata-monitor/forwarder"
	"github.com/kata-containers/kata-monitor/httpapi"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
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
	WAL config.WALConfig `yaml:"wal"`
	// MetricRelabelConfigs apply to every scraped series before it is pushed.
	MetricRelabelConfigs []*relabel.Config `yaml:"metric_relabel_configs"`
	// RemoteWrite lists the endpoints to push to; empty means pull only.
	RemoteWrite []config.Config `yaml:"remote_write"`
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
		WAL:          config.DefaultWALConfig(),
	}
}

// LoadFile reads and validates the file at path. Its errors are Errors
// (every problem, each with its line and key path) or the read error.
func LoadFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err // *fs.PathError already names the file
	}
	return Load(bytes.NewReader(b))
}

// Load decodes r strictly over Default(), applies list-item defaults and
// validates. An empty document yields Default(). Every problem is reported
// at once, as Errors: unknown keys, values of the wrong kind and invalid
// settings, each with its line and key path.
func Load(r io.Reader) (Config, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	// First the shape, as a node tree: all unknown keys and bad values at
	// once, in the file's terms.
	doc, err := parseDocument(raw)
	if err != nil {
		return Config{}, err
	}
	sc := shapeChecker{lines: map[string]int{}}
	sc.check(&doc, reflect.TypeFor[Config](), "")
	cfg, err := decodeOverDefaults(raw, &doc, &sc)
	if err != nil {
		return Config{}, err
	}
	cfg.applyListDefaults()
	errs := append(sc.errs, cfg.settingProblems(&sc)...)
	if err := errs.orNil(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// parseDocument parses raw as one YAML document (empty: a zero node); a
// second document in the file is almost certainly a mistake, refused.
func parseDocument(raw []byte) (yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return doc, syntaxErrors(err).orNil()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return doc, Errors{{Line: extra.Line, Msg: "a second YAML document (after ---): put everything in one"}}
	} else if !errors.Is(err, io.EOF) {
		return doc, syntaxErrors(err).orNil()
	}
	return doc, nil
}

// decodeOverDefaults is the real, strict decode over Default(). With shape
// errors (sc.errs) it runs lax, over the node tree with every refused
// value blanked (so the field keeps its default), only so that the other
// sections can still be validated: every problem is reported at once. An
// error means there is nothing worth validating: a syntax error the shape
// check missed, or, with shape errors, a decode stopped half-way (then
// the error is the shape errors).
func decodeOverDefaults(raw []byte, doc *yaml.Node, sc *shapeChecker) (Config, error) {
	cfg := Default()
	var err error
	if len(sc.errs) == 0 {
		strict := yaml.NewDecoder(bytes.NewReader(raw))
		strict.KnownFields(true)
		err = strict.Decode(&cfg)
	} else {
		for _, n := range sc.bad {
			*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		}
		err = doc.Decode(&cfg)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if len(sc.errs) == 0 {
			return Config{}, syntaxErrors(err).orNil() // unexpected: the check passed
		}
		if !errors.As(err, &te) {
			// A value's own unmarshaler stopped the decode half-way
			// although the check blanked every refused value: what
			// follows is undecoded, so validating it would mislead.
			return Config{}, sc.errs.orNil()
		}
	}
	return cfg, nil
}

// settingProblems expands the external labels and validates c, each
// problem with its line (from sc); a problem in a section that had a bad
// value is left out: that section holds a default in its place, and what
// Validate says about it may be an echo of it.
func (c *Config) settingProblems(sc *shapeChecker) Errors {
	var later, errs Errors
	if err := c.expandExternalLabels(os.LookupEnv); err != nil {
		later = append(later, asErrors(err)...)
	}
	if err := c.Validate(); err != nil {
		later = append(later, asErrors(err)...)
	}
	for _, e := range later {
		if hasSection(echoes(*sc), e.Path) {
			continue
		}
		if e.Line == 0 {
			e.Line = lineOf(sc.lines, e.Path)
		}
		errs = append(errs, e)
	}
	return errs
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

// Validate checks every section, each on its own (the wal section too when
// no remote_write uses it), and returns every problem found as Errors whose
// paths are the file's keys (lines are added by Load, which has the file).
func (c Config) Validate() error {
	var errs Errors
	section := func(path string, err error) {
		if err == nil {
			return
		}
		// A stage that reports several problems (errors.Join) gets one
		// Error each, so every one has its own key and line.
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				errs = append(errs, stageError(path, e))
			}
			return
		}
		errs = append(errs, stageError(path, err))
	}
	section("global", c.Global.Validate())
	// Roots live at the top level (sandbox_roots), the rest under sandbox:.
	// sandbox.Config.Validate stops at its first problem, so the roots are
	// checked beside a valid rest and the rest beside valid roots.
	roots, rest := c.SandboxWatcherConfig(), c.SandboxWatcherConfig()
	roots.ResyncInterval = sandbox.DefaultConfig().ResyncInterval
	rest.Roots = sandbox.DefaultConfig().Roots
	if err := roots.Validate(); err != nil {
		var re *sandbox.RootsError
		if errors.As(err, &re) {
			errs = append(errs, &Error{Path: rootsPath("sandbox_roots", re.Index), Msg: re.Reason})
		} else {
			section("sandbox_roots", err)
		}
	}
	section("sandbox", rest.Validate())
	section("cri", c.CRI.Validate())
	section("shim", c.Shim.Validate())
	section("web", c.Web.Validate())
	for i, rc := range c.MetricRelabelConfigs {
		path := fmt.Sprintf("metric_relabel_configs[%d]", i)
		if rc == nil {
			errs = append(errs, &Error{Path: path, Msg: "empty rule"})
			continue
		}
		if err := rc.Validate(model.UTF8Validation); err != nil {
			errs = append(errs, &Error{Path: path, Msg: err.Error()})
		}
	}
	section("wal", c.WAL.Validate())
	names := map[string]int{}
	for i, rw := range c.RemoteWrite {
		section(fmt.Sprintf("remote_write[%d]", i), rw.Validate())
		if j, dup := names[rw.Name]; dup {
			errs = append(errs, &Error{Path: fmt.Sprintf("remote_write[%d].name", i),
				Msg: fmt.Sprintf("%q already used by remote_write[%d]", rw.Name, j)})
		}
		names[rw.Name] = i
	}
	return errs.orNil()
}

// echoes is the shape errors whose section Validate may echo: all but the
// contained ones.
func echoes(sc shapeChecker) Errors {
	var out Errors
	for _, e := range sc.errs {
		if !sc.contained[e] {
			out = append(out, e)
		}
	}
	return out
}

// hasSection reports whether one of errs lies in the same top-level section
// (or list item: remote_write[1]) as path.
func hasSection(errs Errors, path string) bool {
	for _, e := range errs {
		if section(e.Path) == section(path) || within(e.Path, path) || within(path, e.Path) {
			return true
		}
	}
	return false
}

// within reports whether path is ancestor or equal to descendant, as
// key paths: sandbox_roots is an ancestor of sandbox_roots[0].
func within(ancestor, descendant string) bool {
	rest, ok := strings.CutPrefix(descendant, ancestor)
	return ok && (rest == "" || rest[0] == '.' || rest[0] == '[')
}

// section is the first element of a key path, with its list index.
func section(path string) string {
	if i := strings.IndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return path
}

// rootsPath names one root (index >= 0) or the whole list (index < 0).
func rootsPath(list string, index int) string {
	if index < 0 {
		return list
	}
	return fmt.Sprintf("%s[%d]", list, index)
}

// expandExternalLabels replaces ${VAR} and $VAR in external label values from
// the environment, so a DaemonSet can label series with the node name from
// the downward API. An unset variable is an error: an empty node label would
// merge every node's series.
func (c *Config) expandExternalLabels(lookup func(string) (string, bool)) error {
	var errs Errors
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
			errs = append(errs, &Error{Path: "global.external_labels." + name,
				Msg: fmt.Sprintf("environment variable %s is not set", strings.Join(missing, ", "))})
			continue
		}
		c.Global.ExternalLabels[name] = out
	}
	return errs.orNil()
}
