package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/prometheus/prometheus/tsdb/fileutil"
)

const (
	AckFileName       = "ack"
	ackTmpFileName    = "ack.tmp"
	ackVersion        = 1
	ackVersionTenants = 2
	ackFileSize       = 4 + 1 + 8 + 8 + 4     // magic, version, seq, segment, crc
	ackFixedSizeV2    = 4 + 1 + 8 + 8 + 4 + 4 // ..., tenant count, crc
	ackMagic          = "KMAK"
)

var (
	castagnoli     = crc32.MakeTable(crc32.Castagnoli)
	ErrAckCorrupt  = errors.New("corrupt ack file")
	ErrAckVersion  = errors.New("unsupported ack file version")
	ErrAckNotFound = errors.New("no ack file")
)

// AckState is the persisted acknowledged position.
type AckState struct {
	Seq     uint64 // every block <= Seq is done, whatever its tenant
	Segment int64  // segment holding the first unacked block when written (diagnostic)
	// Tenants holds, per tenant, the seq up to which that tenant's blocks
	// are done (entries not above Seq add nothing). Tenants are at most
	// MaxTenantLength bytes.
	Tenants map[string]uint64
}

// Done is the position up to which blocks of tenant are done.
func (a AckState) Done(tenant string) uint64 { return max(a.Seq, a.Tenants[tenant]) }

// EncodeAck writes version 1 when a has no tenant entries (what releases
// before tenant records read), else version 2.
func EncodeAck(a AckState) []byte {
	if len(a.Tenants) == 0 {
		buf := make([]byte, ackFileSize)
		copy(buf, ackMagic)
		buf[4] = ackVersion
		binary.BigEndian.PutUint64(buf[5:], a.Seq)
		binary.BigEndian.PutUint64(buf[13:], uint64(a.Segment))
		binary.BigEndian.PutUint32(buf[21:], crc32.Checksum(buf[:21], castagnoli))
		return buf
	}
	buf := make([]byte, 0, ackFixedSizeV2+len(a.Tenants)*(1+MaxTenantLength+8))
	return appendAckV2(buf, a, slices.Sorted(maps.Keys(a.Tenants)))
}

// appendAckV2 appends a's version 2 encoding to buf, its entries in the
// order of names (a's tenants, sorted).
func appendAckV2(buf []byte, a AckState, names []string) []byte {
	start := len(buf)
	buf = append(buf, ackMagic...)
	buf = append(buf, ackVersionTenants)
	buf = binary.BigEndian.AppendUint64(buf, a.Seq)
	buf = binary.BigEndian.AppendUint64(buf, uint64(a.Segment))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(a.Tenants)))
	for _, t := range names {
		t = t[:min(len(t), MaxTenantLength)]
		buf = append(buf, byte(len(t)))
		buf = append(buf, t...)
		buf = binary.BigEndian.AppendUint64(buf, a.Tenants[t])
	}
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf[start:], castagnoli))
}

// DecodeAck parses an ack file. Every version ends with a CRC32-Castagnoli of
// all preceding bytes, so a flipped version byte reads as corruption (resend)
// while an intact file from a newer writer is refused (ErrAckVersion).
func DecodeAck(buf []byte) (AckState, error) {
	if len(buf) < 4+1+4 || string(buf[:4]) != ackMagic {
		return AckState{}, fmt.Errorf("%w: bad magic or size %d", ErrAckCorrupt, len(buf))
	}
	body, sum := buf[:len(buf)-4], binary.BigEndian.Uint32(buf[len(buf)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return AckState{}, fmt.Errorf("%w: checksum mismatch", ErrAckCorrupt)
	}
	if buf[4] == ackVersionTenants {
		return decodeAckV2(body)
	}
	if buf[4] != ackVersion {
		return AckState{}, fmt.Errorf("%w %d (written by a newer kata-monitor?)", ErrAckVersion, buf[4])
	}
	if len(buf) != ackFileSize {
		return AckState{}, fmt.Errorf("%w: size %d", ErrAckCorrupt, len(buf))
	}
	return AckState{
		Seq:     binary.BigEndian.Uint64(buf[5:]),
		Segment: int64(binary.BigEndian.Uint64(buf[13:])),
	}, nil
}

// decodeAckV2 parses a version 2 body (CRC already checked and cut off).
func decodeAckV2(body []byte) (AckState, error) {
	if len(body) < ackFixedSizeV2-4 {
		return AckState{}, fmt.Errorf("%w: size %d", ErrAckCorrupt, len(body)+4)
	}
	a := AckState{
		Seq:     binary.BigEndian.Uint64(body[5:]),
		Segment: int64(binary.BigEndian.Uint64(body[13:])),
		Tenants: map[string]uint64{},
	}
	n := binary.BigEndian.Uint32(body[21:])
	rest := body[25:]
	for range n {
		if len(rest) < 1 || len(rest) < 1+int(rest[0])+8 {
			return AckState{}, fmt.Errorf("%w: tenant entries cut short", ErrAckCorrupt)
		}
		l := int(rest[0])
		a.Tenants[string(rest[1:1+l])] = binary.BigEndian.Uint64(rest[1+l:])
		rest = rest[1+l+8:]
	}
	if len(rest) != 0 || len(a.Tenants) != int(n) {
		return AckState{}, fmt.Errorf("%w: %d bytes after %d tenant entries", ErrAckCorrupt, len(rest), n)
	}
	return a, nil
}

func ReadAck(dir string) (AckState, error) {
	buf, err := os.ReadFile(filepath.Join(dir, AckFileName))
	if errors.Is(err, os.ErrNotExist) {
		return AckState{}, ErrAckNotFound
	}
	if err != nil {
		return AckState{}, fmt.Errorf("read ack file: %w", err)
	}
	return DecodeAck(buf)
}

// WriteAck replaces the ack file atomically: temp file, fsync, then
// fileutil.Rename (rename, fsync of the directory), so a crash leaves either
// the old or the new position.
func WriteAck(dir string, a AckState) error {
	tmp := filepath.Join(dir, ackTmpFileName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("create %s: %w", ackTmpFileName, err)
	}
	if _, err := f.Write(EncodeAck(a)); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", ackTmpFileName, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", ackTmpFileName, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", ackTmpFileName, err)
	}
	if err := fileutil.Rename(tmp, filepath.Join(dir, AckFileName)); err != nil {
		return fmt.Errorf("rename ack file: %w", err)
	}
	return nil
}

func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync dir: %w", err)
	}
	return nil
}
