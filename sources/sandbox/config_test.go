package sandbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "default", mutate: func(*Config) {}},
		{name: "no roots", mutate: func(c *Config) { c.Roots = nil }, wantErr: "roots:"},
		{name: "relative root", mutate: func(c *Config) { c.Roots = []string{"run/kata"} }, wantErr: "roots[0]:"},
		{name: "duplicate root", mutate: func(c *Config) { c.Roots = []string{"/run/kata", "/run/kata/"} }, wantErr: "roots[1]:"},
		{name: "zero resync", mutate: func(c *Config) { c.ResyncInterval = 0 }, wantErr: "resync_interval:"},
		{name: "negative resync", mutate: func(c *Config) { c.ResyncInterval = -time.Second }, wantErr: "resync_interval:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestDefaultConfigIsUpstream(t *testing.T) {
	cfg := DefaultConfig()
	require.Equal(t, []string{"/run/vc/sbs", "/run/kata"}, cfg.Roots)
	require.Equal(t, 30*time.Second, cfg.ResyncInterval)
}
