package shim

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{name: "defaults", mod: func(*Config) {}},
		{name: "zero timeout", mod: func(c *Config) { c.Timeout = 0 }, wantErr: "timeout: must be > 0"},
		{name: "negative timeout", mod: func(c *Config) { c.Timeout = -time.Second }, wantErr: "timeout: must be > 0"},
		{name: "zero cap", mod: func(c *Config) { c.MaxResponseBytes = 0 }, wantErr: "max_response_bytes: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mod(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.wantErr)
			_, err = NewPool(cfg, nil)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
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
