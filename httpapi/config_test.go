package httpapi

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func prometheusRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"write timeout set", func(c *Config) { c.WriteTimeout = time.Minute }, ""},
		{"read timeout zero", func(c *Config) { c.ReadTimeout = 0 }, "read_timeout: must be > 0"},
		{"write timeout negative", func(c *Config) { c.WriteTimeout = -1 }, "write_timeout: must be >= 0"},
		{"header bytes tiny", func(c *Config) { c.MaxHeaderBytes = 10 }, "max_header_bytes"},
		{"query bytes zero", func(c *Config) { c.MaxQueryBytes = 0 }, "max_query_bytes: must be > 0"},
		{"query over header", func(c *Config) { c.MaxQueryBytes = c.MaxHeaderBytes + 1 }, "max_query_bytes: must not exceed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	assert.True(t, c.EnableDebug)
	assert.Equal(t, 30*time.Second, c.ReadTimeout)
	assert.Equal(t, 10*time.Second, c.readHeaderTimeout())
	assert.Equal(t, 64<<10, c.MaxHeaderBytes)
	assert.Equal(t, 4<<10, c.MaxQueryBytes)
	c.ReadTimeout = 2 * time.Second
	assert.Equal(t, 2*time.Second, c.readHeaderTimeout())
}
