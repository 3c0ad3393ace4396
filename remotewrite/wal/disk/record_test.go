package disk

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, b := range []Block{
		{Seq: 1, Group: 1, Samples: 0, MinTimestamp: -9, MaxTimestamp: -5, Data: nil},
		{Seq: 1<<64 - 1, Group: 7, Samples: 1<<32 - 1, MinTimestamp: 1 << 61, MaxTimestamp: 1 << 62, Format: 3, Data: []byte("snappy bytes")},
		{Seq: 8, Group: 6, Samples: 2, Tenant: "team-a", Data: []byte("tenant bytes")},
		{Seq: 9, Group: 9, Tenant: string(make([]byte, MaxTenantLength))},
	} {
		got, err := DecodeRecord(EncodeRecord(&b))
		require.NoError(t, err)
		require.Equal(t, string(b.Data), string(got.Data))
		got.Data = b.Data
		require.Equal(t, b, got)
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	ok := EncodeRecord(&Block{Seq: 5, Group: 3, Data: []byte("x")})
	for _, tc := range []struct {
		name string
		rec  []byte
		want string
	}{
		{"empty", nil, "empty record"},
		{"version", append([]byte{5}, ok[1:]...), "unknown record version 5"},
		{"v4 without tenant", append([]byte{RecordVersionTenant}, ok[1:]...), "short record"},
		{"v4 short tenant", EncodeRecord(&Block{Seq: 5, Group: 3, Tenant: "abc"})[:RecordHeaderSize+3], "short record"},
		{"short", ok[:20], "short record"},
		{"short v3", ok[:RecordHeaderSize-1], "short record"},
		{"short v2", encodeRecordV2(&Block{Seq: 5, Group: 3})[:recordHeaderSizeV2-1], "short record"},
		{"zero_seq", EncodeRecord(&Block{Seq: 0, Group: 0}), "invalid seq"},
		{"group_after_seq", EncodeRecord(&Block{Seq: 3, Group: 4}), "invalid seq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRecord(tc.rec)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// encodeRecordV1 writes the version 1 layout (no minTimestamp), as
// kata-monitor did before record version 2.
func encodeRecordV1(b *Block) []byte {
	rec := EncodeRecord(b)
	v1 := append([]byte{recordVersion1}, rec[1:recordHeaderSizeV1]...)
	return append(v1, b.Data...)
}

// encodeRecordV2 writes the version 2 layout (no format), as kata-monitor
// did until record version 3.
func encodeRecordV2(b *Block) []byte {
	rec := EncodeRecord(b)
	v2 := append([]byte{recordVersion2}, rec[1:recordHeaderSizeV2]...)
	return append(v2, b.Data...)
}

// TestRecordVersion2StillReads: WALs written before version 3 replay, with
// Format 0 (remote write 1.0, snappy: all they could hold).
func TestRecordVersion2StillReads(t *testing.T) {
	b := Block{Seq: 4, Group: 3, Samples: 7, MinTimestamp: 100, MaxTimestamp: 250, Format: 9, Data: []byte("payload")}
	got, err := DecodeRecord(encodeRecordV2(&b))
	require.NoError(t, err)
	require.Equal(t, Block{Seq: 4, Group: 3, Samples: 7, MinTimestamp: 100, MaxTimestamp: 250, Data: []byte("payload")}, got)
}

// TestRecordVersion1StillReads: WALs written before version 2 replay, with
// MinTimestamp taken from MaxTimestamp.
func TestRecordVersion1StillReads(t *testing.T) {
	b := Block{Seq: 4, Group: 3, Samples: 7, MinTimestamp: 100, MaxTimestamp: 250, Data: []byte("payload")}
	got, err := DecodeRecord(encodeRecordV1(&b))
	require.NoError(t, err)
	require.Equal(t, Block{Seq: 4, Group: 3, Samples: 7, MinTimestamp: 250, MaxTimestamp: 250, Data: []byte("payload")}, got)
}

// TestRecordWithoutTenantIsVersion3: a queue without tenants writes what
// the release before tenant records reads, so a downgrade keeps it.
func TestRecordWithoutTenantIsVersion3(t *testing.T) {
	require.Equal(t, byte(RecordVersion), EncodeRecord(&Block{Seq: 1, Group: 1})[0])
	require.Equal(t, byte(RecordVersionTenant), EncodeRecord(&Block{Seq: 1, Group: 1, Tenant: "a"})[0])
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(EncodeRecord(&Block{Seq: 3, Group: 2, Tenant: "ns-1", Data: []byte("payload")}))
	f.Add(EncodeRecord(&Block{Seq: 1, Group: 1, Samples: 3, MaxTimestamp: 42, Data: []byte("payload")}))
	f.Add(EncodeRecord(&Block{Seq: 9, Group: 2}))
	f.Add(encodeRecordV1(&Block{Seq: 2, Group: 1, Samples: 3, MaxTimestamp: 42, Data: []byte("v1")}))
	f.Add(encodeRecordV2(&Block{Seq: 2, Group: 1, Samples: 3, MinTimestamp: 40, MaxTimestamp: 42, Data: []byte("v2")}))
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, rec []byte) {
		b, err := DecodeRecord(rec)
		if err != nil {
			return
		}
		if b.Seq == 0 || b.Group == 0 || b.Group > b.Seq || b.Samples < 0 {
			t.Fatalf("decoded an invalid block: %+v", b)
		}
		want := EncodeRecord
		if rec[0] == recordVersion2 {
			want = encodeRecordV2
			if b.Format != 0 {
				t.Fatalf("version 2 record with a format: %+v", b)
			}
		}
		if rec[0] == recordVersion1 {
			want = encodeRecordV1
			if b.MinTimestamp != b.MaxTimestamp {
				t.Fatalf("version 1 record with its own MinTimestamp: %+v", b)
			}
		}
		if got := want(&b); string(got) != string(rec) {
			t.Fatalf("re-encoding differs:\n%x\n%x", got, rec)
		}
		// The queue encodes into a reused buffer after other records.
		enc := EncodeRecord(&b)
		if RecordSize(&b) != len(enc) {
			t.Fatalf("RecordSize %d, EncodeRecord %d bytes", RecordSize(&b), len(enc))
		}
		prefix := []byte("earlier record")
		if got := AppendRecord(prefix[:len(prefix):len(prefix)], &b); string(got) != string(prefix)+string(enc) {
			t.Fatalf("AppendRecord after a prefix:\n%x\n%x", got, enc)
		}
	})
}
