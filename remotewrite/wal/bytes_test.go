package wal

import (
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestBytesAppended: the counter grows by each block's record (payload plus
// a small header), so the benchmark can report WAL bytes per sample.
func TestBytesAppended(t *testing.T) {
	q := openTest(t, Config{Dir: filepath.Join(t.TempDir(), "ep")})
	require.Zero(t, testutil.ToFloat64(q.def.m.bytesAppended))
	for i, size := range []int{1000, 5000, 64} {
		before := testutil.ToFloat64(q.def.m.bytesAppended)
		appendN(t, q, 2, size)
		grew := testutil.ToFloat64(q.def.m.bytesAppended) - before
		require.GreaterOrEqual(t, grew, float64(2*size), "append %d", i)
		require.Less(t, grew, float64(2*size+2*64), "append %d: header overhead", i)
	}
}
