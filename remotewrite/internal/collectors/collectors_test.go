package collectors

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestRegisterAllOrNone: a conflict on the second collector leaves the
// first unregistered, so the registry takes the whole group later; and
// Unregister frees every name for the next Register.
func TestRegisterAllOrNone(t *testing.T) {
	reg := prometheus.NewRegistry()
	newA := func() prometheus.Collector {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "A."})
	}
	newB := func() prometheus.Collector {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "B."})
	}
	taken, err := Register(reg, newB())
	require.NoError(t, err)

	_, err = Register(reg, newA(), newB())
	require.Error(t, err, "b_total is taken")
	taken.Unregister()
	g, err := Register(reg, newA(), newB())
	require.NoError(t, err, "a_total was unregistered when b_total failed")

	g.Unregister()
	g.Unregister() // again: nothing
	_, err = Register(reg, newA(), newB())
	require.NoError(t, err)

	none, err := Register(nil, newA())
	require.NoError(t, err)
	none.Unregister()
}
