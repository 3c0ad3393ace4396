package scrape

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBuffers: within a round the pool keeps at most one buffer per
// concurrency slot and drops a buffer much bigger than what it held;
// Release hands every buffer to a sync.Pool (gone after two GC cycles),
// and new ones then get the capacity of the released round's mean body
// plus an eighth.
func TestBuffers(t *testing.T) {
	p := NewBuffers(3)
	require.Nil(t, p.Get(), "no round yet: the scraper sizes its own")
	for _, n := range []int{100, 200, 300, 400, 500} {
		p.Put(make([]byte, n))
	}
	n, maxCap, hint := p.Pooled()
	require.Equal(t, 3, n, "at most one per slot")
	require.Equal(t, 300, maxCap)
	require.Zero(t, hint)
	require.Len(t, p.Get(), 0, "pooled buffers come back empty")

	p.Put(make([]byte, 10, 1<<20)) // 1 MiB holding 10 bytes: dropped
	n, maxCap, _ = p.Pooled()
	require.Equal(t, 2, n)
	require.Equal(t, 200, maxCap)

	p.Release() // mean of 100..500 and 10: 1510/6
	n, _, hint = p.Pooled()
	require.Zero(t, n, "released to the GC's discretion")
	require.Equal(t, 251+251/8, hint)
	// Until GC cycles pass, a released buffer may come back (sync.Pool may
	// also drop it: either is fine).
	b := p.Get()
	require.Empty(t, b)
	require.Contains(t, []int{100, 200, 251 + 251/8}, cap(b))
	// Two cycles without a round let them go: new buffers get the hint.
	runtime.GC()
	runtime.GC()
	b = p.Get()
	require.Empty(t, b)
	require.Equal(t, 251+251/8, cap(b))

	p.Release() // a round without bodies keeps the hint
	_, _, hint = p.Pooled()
	require.Equal(t, 251+251/8, hint)
}
