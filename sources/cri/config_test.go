package cri

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/configtest"
)

func TestConfigValidate(t *testing.T) {
	configtest.Validate(t, DefaultConfig, []configtest.Case[Config]{
		{Name: "default", Mod: func(*Config) {}},
		{Name: "unix scheme", Mod: func(c *Config) { c.Endpoint = "unix:///run/crio/crio.sock" }},
		{Name: "zero min refresh", Mod: func(c *Config) { c.MinRefreshInterval = 0 }},
		{Name: "empty endpoint", Mod: func(c *Config) { c.Endpoint = "" }, WantErr: "endpoint:"},
		{Name: "relative endpoint", Mod: func(c *Config) { c.Endpoint = "containerd.sock" }, WantErr: "endpoint:"},
		{Name: "tcp endpoint", Mod: func(c *Config) { c.Endpoint = "tcp://127.0.0.1:1234" }, WantErr: "endpoint: unsupported scheme"},
		{Name: "zero timeout", Mod: func(c *Config) { c.Timeout = 0 }, WantErr: "timeout:"},
		{Name: "zero refresh", Mod: func(c *Config) { c.RefreshInterval = 0 }, WantErr: "refresh_interval:"},
		{Name: "negative min refresh", Mod: func(c *Config) { c.MinRefreshInterval = -time.Second }, WantErr: "min_refresh_interval:"},
	})
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
		// An absolute path is a path whatever it contains after its
		// first byte; only a leading RFC 3986 scheme is a scheme.
		{endpoint: "unix:/://", want: "/:"},
		{endpoint: "/run/a://b.sock", want: "/run/a:/b.sock"},
		{endpoint: "/run/a:b.sock", want: "/run/a:b.sock"},
		{endpoint: "dns:///x", wantErr: true},
		{endpoint: "C:/x", wantErr: true},
		{endpoint: "run/a://b", wantErr: true},
		{endpoint: "UNIX:///run/crio/crio.sock", want: "/run/crio/crio.sock"},
		{endpoint: "Unix:/run/x.sock", want: "/run/x.sock"},
		{endpoint: "unix:x", wantErr: true},
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
	for _, s := range []string{"/run/containerd/containerd.sock", "unix:///run/crio/crio.sock", "tcp://x:1", "", "unix://", "rel/path", "/a/../..//b", "unix:/://", "/a://b", "//x"} {
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
		// Accepted means a path or the unix scheme, and the path is the
		// endpoint's own after that prefix, cleaned.
		rest, ok := "", len(endpoint) >= 5 && strings.EqualFold(endpoint[:5], "unix:")
		if ok {
			rest = endpoint[5:]
			rest = strings.TrimPrefix(rest, "//")
		} else {
			rest = endpoint
		}
		if !strings.HasPrefix(endpoint, "/") && !ok {
			t.Fatalf("socketPath(%q) = %q: accepted neither a path nor unix:", endpoint, got)
		}
		if filepath.Clean(rest) != got {
			t.Fatalf("socketPath(%q) = %q, want %q", endpoint, got, filepath.Clean(rest))
		}
	})
}
