package disk

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/require"
)

// resum recomputes the trailing CRC, to build intact files of other versions.
func resum(b []byte) []byte {
	binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

func TestAckRoundTrip(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadAck(dir)
	require.ErrorIs(t, err, ErrAckNotFound)
	for _, a := range []AckState{{Seq: 1, Segment: 0}, {Seq: 1<<64 - 1, Segment: 1 << 40},
		{Seq: 3, Segment: 2, Tenants: map[string]uint64{"": 3, "ns-a": 9, "ns.b": 1 << 63}}} {
		require.NoError(t, WriteAck(dir, a))
		got, err := ReadAck(dir)
		require.NoError(t, err)
		require.Equal(t, a, got)
	}
}

func TestDecodeAck(t *testing.T) {
	valid := EncodeAck(AckState{Seq: 42, Segment: 7})
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"valid", valid, nil},
		{"flipped_seq", func() []byte { b := append([]byte(nil), valid...); b[12] ^= 0x80; return b }(), ErrAckCorrupt},
		{"flipped_version", func() []byte { b := append([]byte(nil), valid...); b[4] = 2; return b }(), ErrAckCorrupt},
		{"newer_version", func() []byte { b := append([]byte(nil), valid...); b[4] = 3; return resum(b) }(), ErrAckVersion},
		{"v2_cut", func() []byte {
			b := EncodeAck(AckState{Seq: 42, Segment: 7, Tenants: map[string]uint64{"a": 50}})
			return resum(append(b[:len(b)-8], 0, 0, 0, 0))
		}(), ErrAckCorrupt},
		{"v2_trailing", func() []byte {
			b := EncodeAck(AckState{Seq: 42, Segment: 7, Tenants: map[string]uint64{"a": 50}})
			return resum(append(b[:len(b)-4], 9, 0, 0, 0, 0))
		}(), ErrAckCorrupt},
		{"v2_short", resum(append(append([]byte(nil), valid[:4]...), 2, 0, 0, 0, 0)), ErrAckCorrupt},
		{"v1_wrong_size", resum(append(append([]byte(nil), valid[:21]...), 1, 2, 3, 4, 0, 0, 0, 0)), ErrAckCorrupt},
		{"bad_magic", resum(append([]byte("XXXX"), valid[4:]...)), ErrAckCorrupt},
		{"short", valid[:8], ErrAckCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeAck(tc.in)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, AckState{Seq: 42, Segment: 7}, got)
		})
	}
}
