package wal

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, b := range []Block{
		{Seq: 1, Group: 1, Samples: 0, MaxTimestamp: -5, Data: nil},
		{Seq: 1<<64 - 1, Group: 7, Samples: 1<<32 - 1, MaxTimestamp: 1 << 62, Data: []byte("snappy bytes")},
	} {
		got, err := decodeRecord(encodeRecord(&b))
		require.NoError(t, err)
		require.Equal(t, string(b.Data), string(got.Data))
		got.Data = b.Data
		require.Equal(t, b, got)
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	ok := encodeRecord(&Block{Seq: 5, Group: 3, Data: []byte("x")})
	for _, tc := range []struct {
		name string
		rec  []byte
		want string
	}{
		{"empty", nil, "empty record"},
		{"version", append([]byte{2}, ok[1:]...), "unknown record version 2"},
		{"short", ok[:20], "short record"},
		{"zero_seq", encodeRecord(&Block{Seq: 0, Group: 0}), "invalid seq"},
		{"group_after_seq", encodeRecord(&Block{Seq: 3, Group: 4}), "invalid seq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeRecord(tc.rec)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(&Block{Seq: 1, Group: 1, Samples: 3, MaxTimestamp: 42, Data: []byte("payload")}))
	f.Add(encodeRecord(&Block{Seq: 9, Group: 2}))
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, rec []byte) {
		b, err := decodeRecord(rec)
		if err != nil {
			return
		}
		if b.Seq == 0 || b.Group == 0 || b.Group > b.Seq || b.Samples < 0 {
			t.Fatalf("decoded an invalid block: %+v", b)
		}
		if got := encodeRecord(&b); string(got) != string(rec) {
			t.Fatalf("re-encoding differs:\n%x\n%x", got, rec)
		}
	})
}
