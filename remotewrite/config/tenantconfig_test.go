package config

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestTenantConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		tenant  TenantConfig
		headers map[string]string
		err     string
	}{
		{name: "defaults", tenant: TenantConfig{Label: "cri_namespace"}},
		{name: "thanos header", tenant: TenantConfig{Label: "cri_namespace", Header: "THANOS-TENANT"}},
		{name: "no label", tenant: TenantConfig{}, err: "tenant.label: must be set"},
		{name: "bad default", tenant: TenantConfig{Label: "ns", Default: "a/b"}, err: `tenant.default: tenant "a/b": character '/' not allowed`},
		{name: "dot default", tenant: TenantConfig{Label: "ns", Default: ".."}, err: `tenant.default: tenant "..": not allowed`},
		{name: "protocol header", tenant: TenantConfig{Label: "ns", Header: "Content-Type"}, err: `tenant.header: "Content-Type" may not be used`},
		{name: "bad header", tenant: TenantConfig{Label: "ns", Header: "X Org"}, err: `tenant.header: "X Org" may not be used`},
		{name: "header twice", tenant: TenantConfig{Label: "ns"}, headers: map[string]string{"x-scope-orgid": "a"}, err: "tenant.header: X-Scope-Orgid is also set in headers"},
		{name: "max tenants", tenant: TenantConfig{Label: "ns", MaxTenants: -1}, err: "tenant.max_tenants: must be > 0"},
		{name: "idle", tenant: TenantConfig{Label: "ns", IdleTimeout: model.Duration(-time.Second)}, err: "tenant.idle_timeout: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := tt.tenant
			cfg := Config{URL: "http://127.0.0.1:9/api/v1/push", Headers: tt.headers, Tenant: &tc}
			cfg.ApplyDefaults()
			err := cfg.Validate()
			if tt.err == "" {
				require.NoError(t, err)
				require.Equal(t, DefaultMaxTenants, cfg.Tenant.MaxTenants)
				require.Equal(t, DefaultTenant, cfg.Tenant.Default)
				return
			}
			require.ErrorContains(t, err, tt.err)
		})
	}
}

func TestValidTenant(t *testing.T) {
	for _, ok := range []string{"team-a", "kube_system", "a.b", ".x", "x.", "a!*'()b", "...", strings.Repeat("n", 150)} {
		require.NoError(t, ValidTenant(ok), ok)
	}
	// Mimir's rule (dskit tenant.ValidTenantID at the Mimir the e2e tests
	// build): besides those, "|" separates several tenants in one header
	// (a push with it is refused), and dskit reads "tenant:key=value" as a
	// tenant with metadata; CR/LF would split the request header.
	for _, bad := range []string{"a/b", "../x", "", ".", "..", "a b", "ü", strings.Repeat("n", 151),
		"a|b", "a:b", "a\tb", "a\r\nX-Scope-OrgID: other", "ns%2f", "a=b", "a,b", `a"b`} {
		require.Error(t, ValidTenant(bad), bad)
	}
}
