package forwarder

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/relabel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"interval", func(c *Config) { c.ScrapeInterval = 0 }, "scrape_interval: must be > 0"},
		{"timeout", func(c *Config) { c.ScrapeTimeout = -1 }, "scrape_timeout: must be > 0"},
		{"timeout above interval", func(c *Config) { c.ScrapeTimeout = time.Minute }, "scrape_timeout: 1m0s must be <= scrape_interval 15s"},
		{"concurrency", func(c *Config) { c.Concurrency = 0 }, "concurrency: must be > 0"},
		{"max age", func(c *Config) { c.SnapshotMaxAge = -time.Second }, "snapshot_max_age: must be >= 0"},
		{"external label name", func(c *Config) { c.ExternalLabels = map[string]string{"": "x"} }, "external_labels: invalid label name"},
		{"external label value", func(c *Config) { c.ExternalLabels = map[string]string{"a": "\xff"} }, "external_labels.a: invalid UTF-8 value"},
		{"nil relabel rule", func(c *Config) { c.MetricRelabelConfigs = []*relabel.Config{nil} }, "metric_relabel_configs[0]: empty rule"},
		{"bad relabel rule", func(c *Config) {
			c.MetricRelabelConfigs = []*relabel.Config{relabelRule(func(r *relabel.Config) { r.Action = relabel.HashMod })}
		}, "metric_relabel_configs[0]: relabel configuration for hashmod requires non-zero modulus"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
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
