package cri

import (
	"path/filepath"
	"strings"
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
		{name: "unix scheme", mutate: func(c *Config) { c.Endpoint = "unix:///run/crio/crio.sock" }},
		{name: "zero min refresh", mutate: func(c *Config) { c.MinRefreshInterval = 0 }},
		{name: "empty endpoint", mutate: func(c *Config) { c.Endpoint = "" }, wantErr: "endpoint:"},
		{name: "relative endpoint", mutate: func(c *Config) { c.Endpoint = "containerd.sock" }, wantErr: "endpoint:"},
		{name: "tcp endpoint", mutate: func(c *Config) { c.Endpoint = "tcp://127.0.0.1:1234" }, wantErr: "endpoint: unsupported scheme"},
		{name: "zero timeout", mutate: func(c *Config) { c.Timeout = 0 }, wantErr: "timeout:"},
		{name: "zero refresh", mutate: func(c *Config) { c.RefreshInterval = 0 }, wantErr: "refresh_interval:"},
		{name: "negative min refresh", mutate: func(c *Config) { c.MinRefreshInterval = -time.Second }, wantErr: "min_refresh_interval:"},
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

func TestSocketPath(t *testing.T) {
	tests := []struct {
		endpoint string
		want     string
		wantErr  bool
	}{
		{endpoint: "/run/containerd/containerd.sock", want: "/run/containerd/containerd.sock"},
		{endpoint: "unix:///run/crio/crio.sock", want: "/run/crio/crio.sock"},
		{endpoint: "unix:///run//x/../crio.sock", want: "/run/crio.sock"},
		{endpoint: "", wantErr: true},
		{endpoint: "unix://", wantErr: true},
		{endpoint: "unix://run/crio.sock", wantErr: true},
		{endpoint: "unix:/run/crio.sock", want: "/run/crio.sock"},
		{endpoint: "unix:/run/containerd/containerd.sock", want: "/run/containerd/containerd.sock"},
		{endpoint: "unix:run/crio.sock", wantErr: true},
		{endpoint: "unix:", wantErr: true},
		{endpoint: "npipe:////./pipe/containerd", wantErr: true},
		{endpoint: "/run/a\x00b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			got, err := socketPath(tt.endpoint)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func FuzzSocketPath(f *testing.F) {
	for _, s := range []string{"/run/containerd/containerd.sock", "unix:///run/crio/crio.sock", "tcp://x:1", "", "unix://", "rel/path", "/a/../..//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, endpoint string) {
		got, err := socketPath(endpoint)
		if err != nil {
			return
		}
		if !filepath.IsAbs(got) || filepath.Clean(got) != got || strings.ContainsRune(got, 0) {
			t.Fatalf("socketPath(%q) = %q: not a clean absolute path", endpoint, got)
		}
		if strings.Contains(endpoint, "://") && !strings.HasPrefix(endpoint, unixScheme) {
			t.Fatalf("socketPath(%q) accepted a non-unix scheme", endpoint)
		}
	})
}
