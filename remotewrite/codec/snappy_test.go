package codec

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// checkSnappyV1 requires appendSnappyV1(prefix, ss) to keep prefix and
// append one Snappy block that golang/snappy decodes to exactly
// marshalV1(ss), whose length prefix is minimal (Snappy's DecodedLen),
// and at most 2 % larger than compressing the whole request at once.
func checkSnappyV1(t *testing.T, ss []series.Series) {
	t.Helper()
	var m marshaler
	raw, err := m.marshalV1(ss)
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.Clone(raw)
	prefix := []byte("earlier block")
	var ms marshaler
	out := ms.appendSnappyV1(bytes.Clone(prefix), ss)
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("prefix overwritten: %q", out[:len(prefix)])
	}
	block := out[len(prefix):]
	n, err := snappy.DecodedLen(block)
	if err != nil || n != len(raw) {
		t.Fatalf("DecodedLen %d, %v; want %d", n, err, len(raw))
	}
	if h := varintSize(uint64(len(raw))); block[h-1]&0x80 != 0 {
		t.Fatalf("length varint of %d not %d bytes: %x", len(raw), h, block[:h])
	}
	got, err := snappy.Decode(nil, block)
	if err != nil {
		t.Fatalf("golang/snappy cannot decode the block (%d bytes of %d): %v", len(block), len(raw), err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatalf("decoded %d bytes differ from the %d marshalled", len(got), len(raw))
	}
	whole := (&Compressor{}).Compress(nil, raw, FormatV1)
	if testing.Verbose() && len(raw) > snappyPiece {
		t.Logf("%d bytes marshalled: %d compressed in pieces, %d at once", len(raw), len(block), len(whole))
	}
	if len(block) > len(whole)+len(whole)/50+8 {
		t.Fatalf("block %d bytes, whole request compressed at once %d", len(block), len(whole))
	}
	// The scratch stays one piece and a series, not the request.
	longest := 0
	for i := range ss {
		var w writerV1
		longest = max(longest, len(w.appendSeries(nil, &ss[i], &ms.slots)))
	}
	if len(raw) > 2*snappyPiece && cap(ms.raw) > 2*(snappyPiece+longest) {
		t.Fatalf("scratch %d bytes for a request of %d", cap(ms.raw), len(raw))
	}
}

// TestAppendSnappyV1 covers requests around the piece size: empty, tiny
// (below Snappy's smallest compressed block), one byte either side of
// one and of several pieces, a series longer than two pieces, template
// series, and the length varint growing from 1 to 4 bytes.
func TestAppendSnappyV1(t *testing.T) {
	plain := func(n, valueLen int) []series.Series {
		ss := make([]series.Series, n)
		for i := range ss {
			ss[i] = series.Series{
				Labels:  []labels.Label{{Name: "__name__", Value: "kata_shim_netdev"}, {Name: "sandbox_id", Value: strings.Repeat("ab", valueLen/2)}, {Name: "i", Value: string(rune('a' + i%26))}},
				Samples: []series.Sample{{Value: float64(i), Timestamp: 1_700_000_000_000 + int64(i)}},
			}
		}
		return ss
	}
	t.Run("empty", func(t *testing.T) { checkSnappyV1(t, nil) })
	t.Run("tiny", func(t *testing.T) {
		checkSnappyV1(t, []series.Series{{Labels: []labels.Label{{Name: "a", Value: "b"}}}})
	})
	t.Run("one", func(t *testing.T) { checkSnappyV1(t, plain(1, 10)) })
	// Series counts whose request ends just below and just above whole
	// pieces (the series of plain(n, 64) marshal to about the same size).
	var m marshaler
	thousand, _ := m.marshalV1(plain(1000, 64))
	per := float64(len(thousand)) / 1000
	for _, pieces := range []int{1, 3} {
		n0 := int(float64(pieces*snappyPiece) / per)
		for range 3 { // correct the estimate with the real size
			raw, _ := m.marshalV1(plain(n0, 64))
			n0 += int(float64(pieces*snappyPiece-len(raw)) / per)
		}
		var below, above bool
		for k := n0 - 2; k <= n0+2; k++ {
			ss := plain(k, 64)
			raw, _ := m.marshalV1(ss)
			below, above = below || len(raw) < pieces*snappyPiece, above || len(raw) > pieces*snappyPiece
			checkSnappyV1(t, ss)
		}
		if !below || !above {
			t.Fatalf("%d pieces: requests do not straddle the boundary", pieces)
		}
	}
	t.Run("long series", func(t *testing.T) {
		ss := plain(3, 10)
		ss[1] = plain(1, 2*snappyPiece+77)[0]
		checkSnappyV1(t, ss)
	})
	t.Run("templates", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, n := range []int{0, 1, 50, 2000, 10000} {
			checkSnappyV1(t, randomTemplateSeries(rng, n))
		}
	})
	t.Run("bench round", func(t *testing.T) { checkSnappyV1(t, templated(benchChunk())) })
}

// FuzzAppendSnappyV1 checks appendSnappyV1 against marshalV1 on random
// template and label series (checkSnappyV1).
func FuzzAppendSnappyV1(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint16(500))
	f.Add(uint64(3), uint64(0), uint16(0))
	f.Fuzz(func(t *testing.T, a, b uint64, n uint16) {
		checkSnappyV1(t, randomTemplateSeries(rand.New(rand.NewPCG(a, b)), int(n)))
	})
}
