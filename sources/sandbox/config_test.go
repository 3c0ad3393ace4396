package sandbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/configtest"
)

func TestConfigValidate(t *testing.T) {
	configtest.Validate(t, DefaultConfig, []configtest.Case[Config]{
		{Name: "default", Mod: func(*Config) {}},
		{Name: "no roots", Mod: func(c *Config) { c.Roots = nil }, WantErr: "roots:"},
		{Name: "relative root", Mod: func(c *Config) { c.Roots = []string{"run/kata"} }, WantErr: "roots[0]:"},
		{Name: "duplicate root", Mod: func(c *Config) { c.Roots = []string{"/run/kata", "/run/kata/"} }, WantErr: "roots[1]:"},
		{Name: "zero resync", Mod: func(c *Config) { c.ResyncInterval = 0 }, WantErr: "resync_interval:"},
		{Name: "negative resync", Mod: func(c *Config) { c.ResyncInterval = -time.Second }, WantErr: "resync_interval:"},
	})
}

func TestDefaultConfigIsUpstream(t *testing.T) {
	cfg := DefaultConfig()
	require.Equal(t, []string{"/run/vc/sbs", "/run/kata"}, cfg.Roots)
	require.Equal(t, 30*time.Second, cfg.ResyncInterval)
}
