package client

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
)

// Shorthands for the helpers shared with the other remote write
// packages' tests (package rwtest).
var (
	mkSeries    = rwtest.Series
	sample      = rwtest.Sample
	newReceiver = rwtest.NewReceiver
)

// testComp is a compressor for tests.
func testComp(t testing.TB) *codec.Compressor {
	t.Helper()
	c, err := codec.NewCompressor()
	require.NoError(t, err)
	return c
}
