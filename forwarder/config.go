package forwarder

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
)

// Config is the forwarder stage of the configuration file.
type Config struct {
	// ScrapeInterval is the period of scheduled (push) rounds.
	ScrapeInterval time.Duration `yaml:"scrape_interval"`
	// ScrapeTimeout bounds one shim scrape, and so one round.
	ScrapeTimeout time.Duration `yaml:"scrape_timeout"`
	// Concurrency is the number of shim scrapes in flight at most.
	Concurrency int `yaml:"concurrency"`
	// ExternalLabels are added to pushed series (not to pull /metrics),
	// never overriding a label the series already has.
	ExternalLabels map[string]string `yaml:"external_labels"`
	// MetricRelabelConfigs rewrite or drop pushed series; the config layer
	// fills it (Prometheus relabel rules are decoded by their own YAML code).
	MetricRelabelConfigs []*relabel.Config `yaml:"-"`
	// SnapshotMaxAge is how long a finished round is served to pull requests
	// before a new round is started.
	SnapshotMaxAge time.Duration `yaml:"snapshot_max_age"`
	// HonorTimestamps keeps the timestamp a shim gives a sample (as
	// Prometheus's honor_timestamps does); false stamps every sample with
	// the round's start time. Either way a pushed sample whose timestamp
	// does not advance its series is not queued (see TimestampRules).
	HonorTimestamps bool `yaml:"honor_timestamps"`
	// PushSelfMetrics pushes kata-monitor's own metrics (what Deps.Self
	// gathers, /metrics/self) with every scheduled round, with the
	// external labels, so a push-only node is observable from the
	// receiver alone.
	PushSelfMetrics bool `yaml:"push_self_metrics"`
}

// DefaultConfig returns the defaults: 15s interval, 5s timeout, 32 parallel
// scrapes, 5s snapshot reuse, shims' timestamps honoured, self-metrics
// pushed.
func DefaultConfig() Config {
	return Config{
		ScrapeInterval:  15 * time.Second,
		ScrapeTimeout:   5 * time.Second,
		Concurrency:     32,
		SnapshotMaxAge:  5 * time.Second,
		HonorTimestamps: true,
		PushSelfMetrics: true,
	}
}

// Validate reports the first invalid field, named by its YAML key. It also
// fills each relabel rule's name validation scheme (UTF-8) when unset,
// which the relabel package needs before processing.
func (c Config) Validate() error {
	var errs []error
	if c.ScrapeInterval <= 0 {
		errs = append(errs, errors.New("scrape_interval: must be > 0"))
	}
	if c.ScrapeTimeout <= 0 {
		errs = append(errs, errors.New("scrape_timeout: must be > 0"))
	} else if c.ScrapeInterval > 0 && c.ScrapeTimeout > c.ScrapeInterval {
		errs = append(errs, fmt.Errorf("scrape_timeout: %s must be <= scrape_interval %s", c.ScrapeTimeout, c.ScrapeInterval))
	}
	if c.Concurrency <= 0 {
		errs = append(errs, errors.New("concurrency: must be > 0"))
	}
	if c.SnapshotMaxAge < 0 {
		errs = append(errs, errors.New("snapshot_max_age: must be >= 0"))
	}
	names := make([]string, 0, len(c.ExternalLabels))
	for name := range c.ExternalLabels {
		names = append(names, name)
	}
	sort.Strings(names) // a stable order for the messages
	for _, name := range names {
		// The key path names the label where it can be spelled as a key
		// (so its line is found); other names only inside the message.
		path := "external_labels"
		if model.LegacyValidation.IsValidLabelName(name) {
			path += "." + name
		}
		if !model.UTF8Validation.IsValidLabelName(name) || name == model.MetricNameLabel {
			errs = append(errs, fmt.Errorf("%s: invalid label name %q", path, name))
		}
		if !model.LabelValue(c.ExternalLabels[name]).IsValid() {
			errs = append(errs, fmt.Errorf("%s: invalid UTF-8 value", path))
		}
	}
	for i, rc := range c.MetricRelabelConfigs {
		switch {
		case rc == nil:
			errs = append(errs, fmt.Errorf("metric_relabel_configs[%d]: empty rule", i))
		case rc.Regex.Regexp == nil:
			errs = append(errs, fmt.Errorf("metric_relabel_configs[%d]: regex not set", i))
		default:
			if err := rc.Validate(model.UTF8Validation); err != nil {
				errs = append(errs, fmt.Errorf("metric_relabel_configs[%d]: %w", i, err))
			}
		}
	}
	return errors.Join(errs...)
}
