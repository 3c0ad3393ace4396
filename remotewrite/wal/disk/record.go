package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

const (
	// RecordVersion is what EncodeRecord writes for a block without a
	// tenant, RecordVersionTenant for one with; DecodeHeader also reads
	// recordVersion1 (written before 2026-11-30, without minTimestamp) and
	// recordVersion2 (written until 2026-11-30, without format).
	RecordVersion       = 3
	RecordVersionTenant = 4
	// MaxTenantLength is the longest tenant a record holds (one length
	// byte; remotewrite's tenants are at most 150 bytes, Mimir's limit).
	MaxTenantLength    = 255
	recordVersion2     = 2
	recordVersion1     = 1
	recordHeaderSizeV1 = 1 + 8 + 8 + 4 + 8      // version, seq, group, samples, maxTimestamp
	recordHeaderSizeV2 = recordHeaderSizeV1 + 8 // ..., minTimestamp
	RecordHeaderSize   = recordHeaderSizeV2 + 1 // ..., format
)

// ErrUnknownRecordVersion marks a record written by a newer (or broken)
// writer: it is counted as corrupt and skipped, never guessed at.
var ErrUnknownRecordVersion = errors.New("unknown record version")

// EncodeRecord returns the wlog payload of b (layout: the package doc);
// Data is its last len(b.Data) bytes. A block without a tenant is written as
// version 3, so a queue without tenants writes what older releases read.
// b.Tenant must be at most MaxTenantLength bytes (it is cut there).
func EncodeRecord(b *Block) []byte {
	return AppendRecord(make([]byte, 0, RecordSize(b)), b)
}

// RecordSize is the length in bytes of b's record (EncodeRecord).
func RecordSize(b *Block) int {
	size := RecordHeaderSize + len(b.Data)
	if n := min(len(b.Tenant), MaxTenantLength); n > 0 {
		size += 1 + n
	}
	return size
}

// AppendRecord appends b's record (EncodeRecord) to dst and returns the
// extended slice, so a writer can encode into a buffer it reuses.
func AppendRecord(dst []byte, b *Block) []byte {
	start := len(dst)
	dst = slices.Grow(dst, RecordSize(b))[:start+RecordSize(b)]
	rec := dst[start:]
	size := RecordHeaderSize
	tenant := b.Tenant[:min(len(b.Tenant), MaxTenantLength)]
	rec[0] = RecordVersion
	if tenant != "" {
		size += 1 + len(tenant)
		rec[0] = RecordVersionTenant
		rec[RecordHeaderSize] = byte(len(tenant))
		copy(rec[RecordHeaderSize+1:], tenant)
	}
	binary.BigEndian.PutUint64(rec[1:], b.Seq)
	binary.BigEndian.PutUint64(rec[9:], b.Group)
	binary.BigEndian.PutUint32(rec[17:], uint32(b.Samples))
	binary.BigEndian.PutUint64(rec[21:], uint64(b.MaxTimestamp))
	binary.BigEndian.PutUint64(rec[29:], uint64(b.MinTimestamp))
	rec[37] = b.Format
	copy(rec[size:], b.Data)
	return dst
}

// DecodeRecord parses a wlog payload. The returned Data is a copy: wlog
// readers reuse their buffers.
func DecodeRecord(rec []byte) (Block, error) {
	b, n, err := DecodeHeader(rec)
	if err != nil {
		return Block{}, err
	}
	b.Data = append([]byte(nil), rec[n:]...)
	return b, nil
}

// DecodeHeader parses everything but the payload, for scans that only
// rebuild the index, and returns the header's size (where Data starts).
// The tenant is a new string per call; Tenant reads it without one.
func DecodeHeader(rec []byte) (Block, int, error) {
	if len(rec) == 0 {
		return Block{}, 0, errors.New("empty record")
	}
	size := RecordHeaderSize
	switch rec[0] {
	case RecordVersionTenant:
		if len(rec) <= RecordHeaderSize || rec[RecordHeaderSize] == 0 {
			return Block{}, 0, fmt.Errorf("short record: %d bytes", len(rec))
		}
		size += 1 + int(rec[RecordHeaderSize])
	case RecordVersion:
	case recordVersion2:
		size = recordHeaderSizeV2
	case recordVersion1:
		size = recordHeaderSizeV1
	default:
		return Block{}, 0, fmt.Errorf("%w %d", ErrUnknownRecordVersion, rec[0])
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
	if rec[0] >= RecordVersion {
		b.Format = rec[37]
	}
	if rec[0] >= RecordVersionTenant {
		b.Tenant = string(rec[RecordHeaderSize+1 : size])
	}
	if b.Seq == 0 || b.Group == 0 || b.Group > b.Seq {
		return Block{}, 0, fmt.Errorf("invalid seq %d / group %d", b.Seq, b.Group)
	}
	return b, size, nil
}

// ValidSamples reports whether n fits the record's samples field.
func ValidSamples(n int) bool { return n >= 0 && uint64(n) <= math.MaxUint32 }

// Block is one opaque payload in the queue (for remote write: one
// ready-to-send, compressed request).
type Block struct {
	// Seq is assigned by Append: strictly increasing and never reused, also
	// across restarts.
	Seq uint64
	// Group is assigned by Append: the Seq of the first block of the same
	// Append call. Blocks of one group hold disjoint series, so they may be
	// sent concurrently; blocks of different groups may not.
	Group uint64
	// Samples is provided by the caller and used for drop accounting.
	Samples int
	// MinTimestamp and MaxTimestamp (ms) are provided by the caller: the
	// oldest and newest sample of the block, for lag metrics. Blocks
	// written by record version 1 read back with MinTimestamp =
	// MaxTimestamp.
	MinTimestamp int64
	MaxTimestamp int64
	// Format is provided by the caller and opaque to the queue: how Data
	// is encoded (remotewrite uses it for the protobuf message and the
	// compression). Blocks written by record versions 1 and 2 read back
	// with Format 0.
	Format uint8
	// Tenant is provided by the caller: the reader (wal.Stream) the block
	// belongs to; "" for a queue without tenants. At most
	// MaxTenantLength bytes. Blocks written by record versions 1 to 3
	// read back with Tenant "".
	Tenant string
	// Data is the payload. Append copies it; a Block returned by Next owns
	// its Data.
	Data []byte
}
