package wal

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
	_, err := readAck(dir)
	require.ErrorIs(t, err, errAckNotFound)
	for _, a := range []ackState{{Seq: 1, Segment: 0}, {Seq: 1<<64 - 1, Segment: 1 << 40}} {
		require.NoError(t, writeAck(dir, a))
		got, err := readAck(dir)
		require.NoError(t, err)
		require.Equal(t, a, got)
	}
}

func TestDecodeAck(t *testing.T) {
	valid := encodeAck(ackState{Seq: 42, Segment: 7})
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"valid", valid, nil},
		{"flipped_seq", func() []byte { b := append([]byte(nil), valid...); b[12] ^= 0x80; return b }(), errAckCorrupt},
		{"flipped_version", func() []byte { b := append([]byte(nil), valid...); b[4] = 2; return b }(), errAckCorrupt},
		{"newer_version", func() []byte { b := append([]byte(nil), valid...); b[4] = 2; return resum(b) }(), errAckVersion},
		{"v1_wrong_size", resum(append(append([]byte(nil), valid[:21]...), 1, 2, 3, 4, 0, 0, 0, 0)), errAckCorrupt},
		{"bad_magic", resum(append([]byte("XXXX"), valid[4:]...)), errAckCorrupt},
		{"short", valid[:8], errAckCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeAck(tc.in)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, ackState{Seq: 42, Segment: 7}, got)
		})
	}
}
