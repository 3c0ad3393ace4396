package httpapi

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"

	"github.com/kata-containers/kata-monitor/test/configtest"
)

func prometheusRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func TestConfigValidate(t *testing.T) {
	configtest.Validate(t, DefaultConfig, []configtest.Case[Config]{
		{Name: "default", Mod: func(*Config) {}},
		{Name: "write timeout set", Mod: func(c *Config) { c.WriteTimeout = time.Minute }},
		{Name: "read timeout zero", Mod: func(c *Config) { c.ReadTimeout = 0 }, WantErr: "read_timeout: must be > 0"},
		{Name: "write timeout negative", Mod: func(c *Config) { c.WriteTimeout = -1 }, WantErr: "write_timeout: must be >= 0"},
		{Name: "header bytes tiny", Mod: func(c *Config) { c.MaxHeaderBytes = 10 }, WantErr: "max_header_bytes"},
		{Name: "query bytes zero", Mod: func(c *Config) { c.MaxQueryBytes = 0 }, WantErr: "max_query_bytes: must be > 0"},
		{Name: "query over header", Mod: func(c *Config) { c.MaxQueryBytes = c.MaxHeaderBytes + 1 }, WantErr: "max_query_bytes: must not exceed"},
	})
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
