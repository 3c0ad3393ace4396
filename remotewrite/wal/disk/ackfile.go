package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/prometheus/prometheus/tsdb/fileutil"
)

const (
	AckFileName    = "ack"
	ackTmpFileName = "ack.tmp"
	ackVersion     = 1
	ackFileSize    = 4 + 1 + 8 + 8 + 4 // magic, version, seq, segment, crc
	ackMagic       = "KMAK"
)

var (
	castagnoli     = crc32.MakeTable(crc32.Castagnoli)
	ErrAckCorrupt  = errors.New("corrupt ack file")
	ErrAckVersion  = errors.New("unsupported ack file version")
	ErrAckNotFound = errors.New("no ack file")
)

// AckState is the persisted acknowledged position.
type AckState struct {
	Seq     uint64 // every block <= Seq is done
	Segment int64  // segment holding the first unacked block when written (diagnostic)
}

func EncodeAck(a AckState) []byte {
	buf := make([]byte, ackFileSize)
	copy(buf, ackMagic)
	buf[4] = ackVersion
	binary.BigEndian.PutUint64(buf[5:], a.Seq)
	binary.BigEndian.PutUint64(buf[13:], uint64(a.Segment))
	binary.BigEndian.PutUint32(buf[21:], crc32.Checksum(buf[:21], castagnoli))
	return buf
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
