package shim

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/configtest"
)

func TestConfigValidate(t *testing.T) {
	configtest.Validate(t, DefaultConfig, []configtest.Case[Config]{
		{Name: "defaults", Mod: func(*Config) {}},
		{Name: "zero timeout", Mod: func(c *Config) { c.Timeout = 0 }, WantErr: "timeout: must be > 0"},
		{Name: "negative timeout", Mod: func(c *Config) { c.Timeout = -time.Second }, WantErr: "timeout: must be > 0"},
		{Name: "zero cap", Mod: func(c *Config) { c.MaxResponseBytes = 0 }, WantErr: "max_response_bytes: must be > 0"},
	}, func(c Config) error {
		_, err := NewPool(c, nil)
		return err
	})
}

func TestNewPoolRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := NewPool(DefaultConfig(), reg)
	require.NoError(t, err)
	_, err = NewPool(DefaultConfig(), reg)
	require.Error(t, err, "a second pool on the same registry is an error, not a panic")

	fams, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, fams, 1)
	require.Equal(t, "kata_monitor_shim_requests_total", fams[0].GetName())
	require.Len(t, fams[0].GetMetric(), 12, "every endpoint x result exported from the start")

	_, err = NewPool(DefaultConfig(), nil)
	require.NoError(t, err)
}
