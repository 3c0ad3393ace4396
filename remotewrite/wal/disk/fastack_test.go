package disk

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fastState is an ack state with n tenants of long names (n large: a
// record over one page).
func fastState(seq uint64, n int) AckState {
	a := AckState{Seq: seq, Segment: 3}
	for i := range n {
		if a.Tenants == nil {
			a.Tenants = map[string]uint64{}
		}
		a.Tenants[fmt.Sprintf("%0200d", i)] = seq + uint64(i) + 1
	}
	return a
}

// TestFastAckNewestIntactRecord: ReadFastAck returns the newest record
// written; when the newest is torn (as a write cut short leaves it) or
// overwritten with garbage, the one before it, which no write touched,
// also when a longer record moved the second slot.
func TestFastAckNewestIntactRecord(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int // tenants per record written, in order
	}{
		{"small", []int{1, 2, 0, 3, 1}},
		{"growing", []int{0, 1, 30, 60, 2, 120, 5}},
		{"shrinking", []int{120, 60, 1, 0, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, ok, err := ReadFastAck(dir)
			require.NoError(t, err)
			require.False(t, ok, "no file")
			w, err := CreateFastAck(dir, 7)
			require.NoError(t, err)
			defer w.Close()
			var prevOff int64 = -1
			for i, n := range tc.sizes {
				want := fastState(uint64(100*i), n)
				require.NoError(t, w.Write(uint32(i), want))
				got, ok, err := ReadFastAck(dir)
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, FastAck{Gen: 7 + uint64(i), Base: uint32(i), State: want}, got)
				if prevOff < 0 {
					prevOff = w.last
					continue
				}
				// Tear the newest record: the previous one must be intact.
				path := filepath.Join(dir, FastAckFileName)
				saved, err := os.ReadFile(path)
				require.NoError(t, err)
				torn := append([]byte(nil), saved...)
				rec := EncodeFastAck(FastAck{Gen: 7 + uint64(i), Base: uint32(i), State: want})
				for j := w.last + int64(len(rec))/2; j < w.last+int64(len(rec)); j++ {
					torn[j] = 0
				}
				require.NoError(t, os.WriteFile(path, torn, 0o640))
				got, ok, err = ReadFastAck(dir)
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, 7+uint64(i-1), got.Gen, "the previous record survives the newest's tearing")
				require.Equal(t, fastState(uint64(100*(i-1)), tc.sizes[i-1]), got.State)
				require.NoError(t, os.WriteFile(path, saved, 0o640))
				prevOff = w.last
			}
		})
	}
}

// TestFastAckGarbageIgnored: empty, short, garbage, a flipped byte or an
// unknown version read as no record, never an error.
func TestFastAckGarbageIgnored(t *testing.T) {
	valid := EncodeFastAck(FastAck{Gen: 3, Base: 9, State: AckState{Seq: 5, Tenants: map[string]uint64{"a": 8}}})
	flip := func(i int) []byte { b := append([]byte(nil), valid...); b[i] ^= 1; return b }
	for name, content := range map[string][]byte{
		"empty":        {},
		"short":        valid[:10],
		"cut":          valid[:len(valid)-1],
		"zeros":        make([]byte, 2*FastAckAlign),
		"flipped_gen":  flip(6),
		"flipped_body": flip(fastAckHeader + 6),
		"flipped_crc":  flip(len(valid) - 1),
		"huge_length":  func() []byte { b := append([]byte(nil), valid...); b[17] = 0xff; return b }(),
		"version":      func() []byte { b := append([]byte(nil), valid...); b[4] = 2; return b }(),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, FastAckFileName), content, 0o640))
			_, ok, err := ReadFastAck(dir)
			require.NoError(t, err)
			require.False(t, ok)
		})
	}
}

// TestFastAckPatchedRecordIsEncodeFastAck: Write reuses its last record,
// patching the positions, gen, base and both checksums in place while the
// tenants stay the same, and encodes afresh when they change. Every
// record written must be byte for byte EncodeFastAck's and read back as
// written, through patches, tenant sets that grow, shrink, change one name
// at the same count, go to none (version 1) and back, and names longer
// than MaxTenantLength (cut by EncodeAck, never patched).
func TestFastAckPatchedRecordIsEncodeFastAck(t *testing.T) {
	long := func(c byte) string { return strings.Repeat(string(c), MaxTenantLength+5) }
	steps := []AckState{
		{Seq: 1, Segment: 0},
		{Seq: 2, Segment: 1}, // patched, version 1
		{Seq: 3, Segment: 1, Tenants: map[string]uint64{"b": 5, "a": 4}},
		{Seq: 3, Segment: 2, Tenants: map[string]uint64{"b": 9, "a": 4}},  // patched
		{Seq: 4, Segment: 2, Tenants: map[string]uint64{"b": 9, "a": 11}}, // patched
		{Seq: 4, Segment: 2, Tenants: map[string]uint64{"b": 9, "c": 11}}, // same count, another name
		{Seq: 4, Segment: 2, Tenants: map[string]uint64{"b": 10, "c": 12, "aa": 7}},
		{Seq: 5, Segment: 3, Tenants: map[string]uint64{"c": 12}},
		{Seq: 12, Segment: 3},
		{Seq: 12, Segment: 4, Tenants: map[string]uint64{long('x'): 20, "x": 19}},
		{Seq: 12, Segment: 4, Tenants: map[string]uint64{long('x'): 21, "x": 19}},
		{Seq: 12, Segment: 4, Tenants: map[string]uint64{"x": 22, "y": 23}},
		{Seq: 12, Segment: 4, Tenants: map[string]uint64{"x": 24, "y": 23}}, // patched
	}
	big := fastState(30, 200) // over one page: the second slot moves
	steps = append(steps, big)
	for i := range 3 {
		next := AckState{Seq: big.Seq + uint64(i), Segment: 5, Tenants: map[string]uint64{}}
		for k, v := range big.Tenants {
			next.Tenants[k] = v + uint64(i)*3
		}
		steps = append(steps, next)
	}
	dir := t.TempDir()
	w, err := CreateFastAck(dir, 40)
	require.NoError(t, err)
	defer w.Close()
	for i, a := range steps {
		want := FastAck{Gen: 40 + uint64(i), Base: uint32(1000 + i), State: a}
		require.NoError(t, w.Write(want.Base, a), "step %d", i)
		require.Equal(t, EncodeFastAck(want), w.rec, "step %d: the record written", i)
		got, ok, err := ReadFastAck(dir)
		require.NoError(t, err)
		require.True(t, ok, "step %d", i)
		if _, cut := a.Tenants[long('x')]; !cut {
			if len(a.Tenants) == 0 {
				got.State.Tenants = nil // DecodeAck's version 1
			}
			require.Equal(t, want, got, "step %d", i)
		}
		require.Equal(t, AckSum(a), AckSum(got.State), "step %d: the body's checksum", i)
	}
}

// BenchmarkFastAckWrite is one Write of a record of n tenants where one
// tenant's position moved (the patch) against the same with the tenant
// set changing at every Write (encoded afresh).
func BenchmarkFastAckWrite(b *testing.B) {
	for _, n := range []int{10, 200} {
		for _, change := range []bool{false, true} {
			b.Run(fmt.Sprintf("tenants=%d/change=%v", n, change), func(b *testing.B) {
				w, err := CreateFastAck(b.TempDir(), 1)
				require.NoError(b, err)
				defer w.Close()
				a := AckState{Seq: 10, Tenants: map[string]uint64{}}
				for i := range n {
					a.Tenants[fmt.Sprintf("namespace-%03d", i)] = uint64(20 + i)
				}
				b.ReportAllocs()
				i := uint64(0)
				for b.Loop() {
					i++
					a.Tenants["namespace-000"] = 1000 + i
					if change {
						delete(a.Tenants, fmt.Sprintf("x%d", i-1))
						a.Tenants[fmt.Sprintf("x%d", i)] = 1
					}
					if err := w.Write(0, a); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
