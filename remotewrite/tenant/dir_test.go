package tenant

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDir: every valid tenant maps to one safe path element that
// maps back to it; names dirOf cannot produce are not tenants.
func TestDir(t *testing.T) {
	for _, tn := range []string{"team-a", "kube_system", "a.b", ".x", "x.", "a!*'()b", "...", strings.Repeat("n", 150)} {
		d := dirOf(tn)
		require.NotContains(t, d, "/", tn)
		require.NotContains(t, d, ".", tn)
		require.Equal(t, d, filepath.Base(d), tn)
		back, ok := tenantOf(d)
		require.True(t, ok, tn)
		require.Equal(t, tn, back)
	}
	require.Equal(t, "team-a", dirOf("team-a"), "namespaces stay readable")
	require.Equal(t, "a%2eb", dirOf("a.b"))
	for _, bad := range []string{"", "a%2", "a%2F", "a%zz", "%41", "a%2fb", "..", ".", "lock", strings.Repeat("n", 151)} {
		_, ok := tenantOf(bad)
		if bad == "lock" {
			require.True(t, ok, "a plain name is a tenant name; IsQueueDir tells queues apart")
			continue
		}
		require.False(t, ok, bad)
	}
}
