package layout

import (
	"math"
	"strconv"
	"testing"
)

// TestReadUint: the integer fast path of readValue reads what
// strconv.ParseFloat reads, and leaves every other shape to it.
func TestReadUint(t *testing.T) {
	for _, in := range []string{"0", "7", "00012", "123456789012345", "999999999999999"} {
		want, err := strconv.ParseFloat(in, 64)
		got, ok := readUint([]byte(in))
		if err != nil || !ok || math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("%q: %v %v, ParseFloat %v %v", in, got, ok, want, err)
		}
	}
	for _, in := range []string{"", "1234567890123456", "-1", "+1", "1.5", "1e3", "NaN", "1_0", "0x1"} {
		if _, ok := readUint([]byte(in)); ok {
			t.Errorf("%q taken by the fast path", in)
		}
	}
}
