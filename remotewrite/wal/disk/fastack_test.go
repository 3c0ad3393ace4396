package disk

import (
	"fmt"
	"os"
	"path/filepath"
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
