package config

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Defaults of TenantConfig.
const (
	DefaultTenantHeader = "X-Scope-OrgID" // Mimir, Cortex, Loki; Thanos Receive wants THANOS-TENANT
	DefaultTenant       = "kata-monitor"
	DefaultMaxTenants   = 64
	maxTenantNameLength = 150 // Mimir's limit (dskit tenant.ValidTenantID)
)

// TenantConfig is an endpoint's `tenant:` block: tenant per namespace (or
// per any label). Each series goes to the tenant named by its Label value,
// or to Default when it has none (kata-monitor's own metrics, node-level
// series). A request holds the series of one tenant only and carries it in
// Header. The tenants share the endpoint's WAL (wal.dir/<endpoint>/
// tenants.wal/, one write and fsync per round), and every tenant has its
// own read position in it and its own sender (remotewrite/tenant.Router),
// so one tenant's refusals, 429s and Retry-After waits never hold back
// another's.
type TenantConfig struct {
	// Label names the label whose value is the tenant, e.g. cri_namespace.
	// Required. It is read before write_relabel_configs run, so those may
	// drop it from what is sent.
	Label string `yaml:"label"`
	// Default is the tenant of series without Label (or with it empty).
	// Default "kata-monitor".
	Default string `yaml:"default"`
	// Header is the request header naming the tenant. Default
	// X-Scope-OrgID (Mimir, Cortex); THANOS-TENANT for Thanos Receive.
	Header string `yaml:"header"`
	// MaxTenants bounds the tenants other than Default with a queue at
	// once (default 64): series of a further tenant are dropped and
	// counted (tenant_samples_dropped_total{reason="tenant_limit"}), never
	// sent to another tenant. The default tenant always has its queue, so
	// series without the label and kata-monitor's own metrics are never
	// dropped for the limit. A tenant whose queue is empty and that got no
	// series for IdleTimeout is closed and frees its place; with MaxTenants
	// queues open, a new tenant also takes the place of one whose queue is
	// empty and that got no series in the last round. The tenants
	// share the endpoint's WAL and its wal.max_size; each gets 1/(MaxTenants
	// + 1) of the in-memory tail.
	MaxTenants int `yaml:"max_tenants"`
	// IdleTimeout is how long a tenant with an empty queue keeps it
	// without getting series (default 1h); then its queue is closed.
	IdleTimeout model.Duration `yaml:"idle_timeout"`
}

func (t *TenantConfig) applyDefaults() {
	setIfZero(&t.Default, DefaultTenant)
	setIfZero(&t.Header, DefaultTenantHeader)
	setIfZero(&t.MaxTenants, DefaultMaxTenants)
	setIfZero(&t.IdleTimeout, model.Duration(time.Hour))
}

// validate returns errors without the "tenant." prefix. headers are the
// endpoint's own headers, which must not set the tenant header too.
func (t TenantConfig) validate(headers map[string]string) error {
	if strings.TrimSpace(t.Label) == "" {
		return errors.New("label: must be set (e.g. cri_namespace)")
	}
	if err := ValidTenant(t.Default); err != nil {
		return fmt.Errorf("default: %w", err)
	}
	ch := http.CanonicalHeaderKey(t.Header)
	if strings.TrimSpace(t.Header) == "" || strings.ContainsAny(t.Header, " :\r\n") || forbiddenHeader(ch) {
		return fmt.Errorf("header: %q may not be used as the tenant header", t.Header)
	}
	for k := range headers {
		if http.CanonicalHeaderKey(k) == ch {
			return fmt.Errorf("header: %s is also set in headers; set it in one place", ch)
		}
	}
	if t.MaxTenants <= 0 {
		return errors.New("max_tenants: must be > 0")
	}
	if t.IdleTimeout <= 0 {
		return errors.New("idle_timeout: must be > 0")
	}
	return nil
}

// ValidTenant applies Mimir's rule for tenant IDs (the strictest of the
// receivers that take a tenant header; dskit's tenant.ValidTenantID): 1 to
// 150 characters among letters, digits and ! - _ . * ' ( ), and not "." or
// "..". Kubernetes namespace names always pass.
func ValidTenant(s string) error {
	switch {
	case s == "":
		return errors.New("empty tenant")
	case len(s) > maxTenantNameLength:
		return fmt.Errorf("tenant %.20q...: longer than %d characters", s, maxTenantNameLength)
	case s == "." || s == "..":
		return fmt.Errorf("tenant %q: not allowed", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !ok && !strings.ContainsRune("!-_.*'()", rune(c)) {
			return fmt.Errorf("tenant %q: character %q not allowed (letters, digits and !-_.*'() only)", s, c)
		}
	}
	return nil
}
