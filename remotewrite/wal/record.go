package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

const (
	// recordVersion is what encodeRecord writes; decodeHeader also reads
	// recordVersion1 (written before 2026-11-30, without minTimestamp) and
	// recordVersion2 (written until 2026-11-30, without format).
	recordVersion      = 3
	recordVersion2     = 2
	recordVersion1     = 1
	recordHeaderSizeV1 = 1 + 8 + 8 + 4 + 8      // version, seq, group, samples, maxTimestamp
	recordHeaderSizeV2 = recordHeaderSizeV1 + 8 // ..., minTimestamp
	recordHeaderSize   = recordHeaderSizeV2 + 1 // ..., format
)

// errUnknownRecordVersion marks a record written by a newer (or broken)
// writer: it is counted as corrupt and skipped, never guessed at.
var errUnknownRecordVersion = errors.New("unknown record version")

// encodeRecord returns the wlog payload of b (see doc.go for the layout).
func encodeRecord(b *Block) []byte {
	rec := make([]byte, recordHeaderSize+len(b.Data))
	rec[0] = recordVersion
	binary.BigEndian.PutUint64(rec[1:], b.Seq)
	binary.BigEndian.PutUint64(rec[9:], b.Group)
	binary.BigEndian.PutUint32(rec[17:], uint32(b.Samples))
	binary.BigEndian.PutUint64(rec[21:], uint64(b.MaxTimestamp))
	binary.BigEndian.PutUint64(rec[29:], uint64(b.MinTimestamp))
	rec[37] = b.Format
	copy(rec[recordHeaderSize:], b.Data)
	return rec
}

// decodeRecord parses a wlog payload. The returned Data is a copy: wlog
// readers reuse their buffers.
func decodeRecord(rec []byte) (Block, error) {
	b, n, err := decodeHeader(rec)
	if err != nil {
		return Block{}, err
	}
	b.Data = append([]byte(nil), rec[n:]...)
	return b, nil
}

// decodeHeader parses everything but the payload, for scans that only
// rebuild the index, and returns the header's size (where Data starts).
func decodeHeader(rec []byte) (Block, int, error) {
	if len(rec) == 0 {
		return Block{}, 0, errors.New("empty record")
	}
	size := recordHeaderSize
	switch rec[0] {
	case recordVersion:
	case recordVersion2:
		size = recordHeaderSizeV2
	case recordVersion1:
		size = recordHeaderSizeV1
	default:
		return Block{}, 0, fmt.Errorf("%w %d", errUnknownRecordVersion, rec[0])
	}
	if len(rec) < size {
		return Block{}, 0, fmt.Errorf("short record: %d bytes", len(rec))
	}
	b := Block{
		Seq:          binary.BigEndian.Uint64(rec[1:]),
		Group:        binary.BigEndian.Uint64(rec[9:]),
		Samples:      int(binary.BigEndian.Uint32(rec[17:])),
		MaxTimestamp: int64(binary.BigEndian.Uint64(rec[21:])),
	}
	b.MinTimestamp = b.MaxTimestamp
	if rec[0] >= recordVersion2 {
		b.MinTimestamp = int64(binary.BigEndian.Uint64(rec[29:]))
	}
	if rec[0] >= recordVersion {
		b.Format = rec[37]
	}
	if b.Seq == 0 || b.Group == 0 || b.Group > b.Seq {
		return Block{}, 0, fmt.Errorf("invalid seq %d / group %d", b.Seq, b.Group)
	}
	return b, size, nil
}

// validSamples reports whether n fits the record's samples field.
func validSamples(n int) bool { return n >= 0 && uint64(n) <= math.MaxUint32 }
