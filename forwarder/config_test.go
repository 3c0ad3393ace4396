package forwarder

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/relabel"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/configtest"
)

func TestConfigValidate(t *testing.T) {
	configtest.Validate(t, DefaultConfig, []configtest.Case[Config]{
		{Name: "defaults", Mod: func(*Config) {}},
		{Name: "interval", Mod: func(c *Config) { c.ScrapeInterval = 0 }, WantErr: "scrape_interval: must be > 0"},
		{Name: "timeout", Mod: func(c *Config) { c.ScrapeTimeout = -1 }, WantErr: "scrape_timeout: must be > 0"},
		{Name: "timeout above interval", Mod: func(c *Config) { c.ScrapeTimeout = time.Minute }, WantErr: "scrape_timeout: 1m0s must be <= scrape_interval 15s"},
		{Name: "concurrency", Mod: func(c *Config) { c.Concurrency = 0 }, WantErr: "concurrency: must be > 0"},
		{Name: "max age", Mod: func(c *Config) { c.SnapshotMaxAge = -time.Second }, WantErr: "snapshot_max_age: must be >= 0"},
		{Name: "external label name", Mod: func(c *Config) { c.ExternalLabels = map[string]string{"": "x"} }, WantErr: "external_labels: invalid label name"},
		{Name: "external label value", Mod: func(c *Config) { c.ExternalLabels = map[string]string{"a": "\xff"} }, WantErr: "external_labels.a: invalid UTF-8 value"},
		{Name: "nil relabel rule", Mod: func(c *Config) { c.MetricRelabelConfigs = []*relabel.Config{nil} }, WantErr: "metric_relabel_configs[0]: empty rule"},
		{Name: "bad relabel rule", Mod: func(c *Config) {
			c.MetricRelabelConfigs = []*relabel.Config{relabelRule(func(r *relabel.Config) { r.Action = relabel.HashMod })}
		}, WantErr: "metric_relabel_configs[0]: relabel configuration for hashmod requires non-zero modulus"},
	})
}

func TestNewRequiresDeps(t *testing.T) {
	r := newRig(t)
	deps := r.f.deps
	deps.Scraper = nil
	_, err := New(DefaultConfig(), deps)
	require.ErrorContains(t, err, "no scraper")
	_, err = New(Config{}, r.f.deps)
	require.ErrorContains(t, err, "scrape_interval")
}
