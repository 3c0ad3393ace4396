package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
)

// FastAckFileName is the fast ack file: acknowledged positions written in
// place, without fsync, between two writes of the ack file.
//
// Layout: records at offsets that are multiples of FastAckAlign, each
//
//	magic "KMAF" | version 1 | gen uint64 | base uint32 | length uint32 |
//	ack file body (EncodeAck, length bytes) | CRC32-Castagnoli of all before
//
// (big endian). gen grows with every write; base is the checksum (AckSum)
// of the ack file the record adds to, 0 when there was none. A writer
// alternates two slots (offset 0 and a second one), so a write cut short
// leaves the previous record intact; a reader takes the valid record with
// the highest gen. Releases before the file ignore it.
const (
	FastAckFileName  = "ack.fast"
	FastAckAlign     = 4096
	fastAckMagic     = "KMAF"
	fastAckVersion   = 1
	fastAckHeader    = 4 + 1 + 8 + 4 + 4
	maxFastAckRecord = 64 << 20
)

// FastAck is one record of the fast ack file.
type FastAck struct {
	Gen   uint64
	Base  uint32 // AckSum of the ack file it was written over; 0: none
	State AckState
}

// AckSum is the checksum that ends a's ack file encoding: what a fast
// record's Base names.
func AckSum(a AckState) uint32 {
	buf := EncodeAck(a)
	return binary.BigEndian.Uint32(buf[len(buf)-4:])
}

// ReadAckSum is ReadAck that also returns the file's checksum (its last
// four bytes), for comparison with a fast record's Base.
func ReadAckSum(dir string) (AckState, uint32, error) {
	buf, err := os.ReadFile(filepath.Join(dir, AckFileName))
	if errors.Is(err, os.ErrNotExist) {
		return AckState{}, 0, ErrAckNotFound
	}
	if err != nil {
		return AckState{}, 0, fmt.Errorf("read ack file: %w", err)
	}
	a, err := DecodeAck(buf)
	if err != nil {
		return AckState{}, 0, err
	}
	return a, binary.BigEndian.Uint32(buf[len(buf)-4:]), nil
}

// EncodeFastAck encodes r as one record of the fast ack file.
func EncodeFastAck(r FastAck) []byte {
	body := EncodeAck(r.State)
	buf := make([]byte, fastAckHeader, fastAckHeader+len(body)+4)
	copy(buf, fastAckMagic)
	buf[4] = fastAckVersion
	binary.BigEndian.PutUint64(buf[5:], r.Gen)
	binary.BigEndian.PutUint32(buf[13:], r.Base)
	binary.BigEndian.PutUint32(buf[17:], uint32(len(body)))
	buf = append(buf, body...)
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

// decodeFastAck parses the record at the start of buf; ok is false for
// anything but an intact record of a known version.
func decodeFastAck(buf []byte) (FastAck, bool) {
	if len(buf) < fastAckHeader+4 || string(buf[:4]) != fastAckMagic || buf[4] != fastAckVersion {
		return FastAck{}, false
	}
	n := int(binary.BigEndian.Uint32(buf[17:]))
	if n > len(buf)-fastAckHeader-4 {
		return FastAck{}, false
	}
	end := fastAckHeader + n
	if crc32.Checksum(buf[:end], castagnoli) != binary.BigEndian.Uint32(buf[end:]) {
		return FastAck{}, false
	}
	a, err := DecodeAck(buf[fastAckHeader:end])
	if err != nil {
		return FastAck{}, false
	}
	return FastAck{Gen: binary.BigEndian.Uint64(buf[5:]), Base: binary.BigEndian.Uint32(buf[13:]), State: a}, true
}

// ReadFastAck returns the newest intact record of dir's fast ack file; ok
// is false when there is none (no file, empty, torn or garbage: such
// records are ignored, never an error). It fails only on I/O errors.
func ReadFastAck(dir string) (r FastAck, ok bool, err error) {
	f, err := os.Open(filepath.Join(dir, FastAckFileName))
	if errors.Is(err, os.ErrNotExist) {
		return FastAck{}, false, nil
	}
	if err != nil {
		return FastAck{}, false, fmt.Errorf("open %s: %w", FastAckFileName, err)
	}
	defer f.Close()
	buf := make([]byte, 0, FastAckAlign)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxFastAckRecord {
				break // not a file this package wrote; what was read counts
			}
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		n, rerr := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr != nil {
			break // io.EOF, or an error: the records read so far count
		}
	}
	for off := 0; off < len(buf); off += FastAckAlign {
		if got, valid := decodeFastAck(buf[off:]); valid && (!ok || got.Gen > r.Gen) {
			r, ok = got, true
		}
	}
	return r, ok, nil
}

// FastAckWriter writes records to a fast ack file, each with one pwrite
// and no fsync: in the page cache when Write returns, so a killed process
// leaves it for the next Open, but not durable across a power cut. Not
// safe for concurrent use.
type FastAckWriter struct {
	f    *os.File
	gen  uint64
	slot int64 // offset of the second slot (the first is at 0)
	last int64 // offset of the newest record, -1 before the first write
	end  int64 // the end of the furthest record written
	// rec is the last record encoded, kept so that the next Write with
	// the same tenants patches it in place (positions, header, both
	// checksums) instead of encoding it again: no sort of the tenant
	// names, no allocation. at holds the offset in rec of each tenant's
	// position; nil when rec is not reusable.
	rec   []byte
	at    map[string]int
	names []string // encodeAfresh's, reused
}

// CreateFastAck creates or truncates dir's fast ack file; the first
// record written gets gen.
func CreateFastAck(dir string, gen uint64) (*FastAckWriter, error) {
	f, err := os.OpenFile(filepath.Join(dir, FastAckFileName), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", FastAckFileName, err)
	}
	return &FastAckWriter{f: f, gen: gen, slot: FastAckAlign, last: -1}, nil
}

// Write writes a over base (the ack file's AckSum, 0 if none) into the
// slot not holding the newest record. A record longer than the first slot
// moves the second slot past everything written so far, so no write ever
// overwrites the newest record. A SIGKILL cannot tear a write of one page
// (a record of up to 4,072 bytes: a few dozen tenants); a longer write
// torn by one leaves the previous record, which ReadFastAck then takes.
func (w *FastAckWriter) Write(base uint32, a AckState) error {
	rec := w.encode(base, a)
	off := int64(0)
	switch {
	case w.last == 0:
		off = w.slot
	case int64(len(rec)) > w.slot:
		// Offset 0 would run into the newest record (at w.slot): start
		// the second slot after everything written.
		w.slot = align(max(w.end, 2*int64(len(rec))))
		off = w.slot
	}
	if _, err := w.f.WriteAt(rec, off); err != nil {
		return fmt.Errorf("write %s: %w", FastAckFileName, err)
	}
	w.gen++
	w.last = off
	w.end = max(w.end, off+int64(len(rec)))
	return nil
}

// encode returns the record for a at w.gen over base: w.rec patched in
// place when a names the same tenants as the record w.rec holds (every
// name found at its offset, same count), else encoded afresh and indexed.
// Either way the bytes are EncodeFastAck's. The patch costs a map lookup
// per tenant and two CRC32-Castagnoli passes over the record (a few KiB:
// about a microsecond with the SSE4.2 instruction Go uses on amd64).
func (w *FastAckWriter) encode(base uint32, a AckState) []byte {
	if w.at == nil || len(w.at) != len(a.Tenants) {
		return w.encodeAfresh(base, a)
	}
	for t, v := range a.Tenants {
		off, ok := w.at[t]
		if !ok {
			return w.encodeAfresh(base, a)
		}
		binary.BigEndian.PutUint64(w.rec[off:], v)
	}
	rec := w.rec
	binary.BigEndian.PutUint64(rec[5:], w.gen)
	binary.BigEndian.PutUint32(rec[13:], base)
	body := rec[fastAckHeader : len(rec)-4]
	binary.BigEndian.PutUint64(body[5:], a.Seq)
	binary.BigEndian.PutUint64(body[13:], uint64(a.Segment))
	n := len(body) - 4
	binary.BigEndian.PutUint32(body[n:], crc32.Checksum(body[:n], castagnoli))
	binary.BigEndian.PutUint32(rec[len(rec)-4:], crc32.Checksum(rec[:len(rec)-4], castagnoli))
	return rec
}

// encodeAfresh encodes a's record into w.rec (its array reused) and
// indexes its tenant positions for encode's patches. A state with a name
// longer than MaxTenantLength (EncodeAck cuts it, which may change the
// order) is not indexed: such a state is encoded afresh every time, never
// patched wrongly.
func (w *FastAckWriter) encodeAfresh(base uint32, a AckState) []byte {
	names := w.names[:0]
	long := false
	for t := range a.Tenants {
		names = append(names, t)
		long = long || len(t) > MaxTenantLength
	}
	slices.Sort(names)
	w.names = names
	rec := append(w.rec[:0], fastAckMagic...)
	rec = append(rec, fastAckVersion)
	rec = binary.BigEndian.AppendUint64(rec, w.gen)
	rec = binary.BigEndian.AppendUint32(rec, base)
	rec = append(rec, 0, 0, 0, 0) // the body's length, below
	if len(a.Tenants) == 0 {
		rec = append(rec, EncodeAck(a)...) // version 1: Seq and Segment only
	} else {
		rec = appendAckV2(rec, a, names)
	}
	binary.BigEndian.PutUint32(rec[17:], uint32(len(rec)-fastAckHeader))
	rec = binary.BigEndian.AppendUint32(rec, crc32.Checksum(rec, castagnoli))
	w.rec = rec
	if long {
		w.at = nil
		return rec
	}
	if w.at == nil {
		w.at = make(map[string]int, len(a.Tenants))
	}
	clear(w.at)
	off := fastAckHeader + ackFixedSizeV2 - 4 // the first entry
	for _, t := range names {
		w.at[t] = off + 1 + len(t)
		off += 1 + len(t) + 8
	}
	return rec
}

// align rounds n up to a multiple of FastAckAlign.
func align(n int64) int64 { return (n + FastAckAlign - 1) / FastAckAlign * FastAckAlign }

// Close closes the file.
func (w *FastAckWriter) Close() error { return w.f.Close() }

// MergeAcks is the newer of a's and b's positions for every tenant either
// names (both say which blocks are done: each is true, so their union is);
// ahead reports that b adds to a. Seq and each entry only grow, so the
// union of two true states is true.
func MergeAcks(a, b AckState) (_ AckState, ahead bool) {
	m := AckState{Seq: max(a.Seq, b.Seq), Segment: max(a.Segment, b.Segment)}
	ahead = b.Seq > a.Seq
	for _, x := range []AckState{a, b} {
		for t := range x.Tenants {
			done := max(a.Done(t), b.Done(t))
			ahead = ahead || done > a.Done(t)
			if done > m.Seq {
				if m.Tenants == nil {
					m.Tenants = map[string]uint64{}
				}
				m.Tenants[t] = done
			}
		}
	}
	return m, ahead
}

// ReadAcks is what a queue's Open starts from: the ack file with the fast
// ack file's newest intact record merged in when that record was written
// over this very ack file (its Base is the file's AckSum). A corrupt ack
// file reads as none (everything replayed) and voids the fast record.
// Errors are ReadAck's (ErrAckVersion, I/O; ErrAckNotFound when neither
// file holds a position).
func ReadAcks(dir string) (AckState, error) {
	a, sum, err := ReadAckSum(dir)
	switch {
	case errors.Is(err, ErrAckCorrupt):
		return AckState{}, err
	case errors.Is(err, ErrAckNotFound):
	case err != nil:
		return AckState{}, err
	}
	f, ok, ferr := ReadFastAck(dir)
	if ferr != nil {
		return a, ferr
	}
	if ok && f.Base == sum {
		a, _ = MergeAcks(a, f.State)
		err = nil // ErrAckNotFound: the fast record is all there is
	}
	return a, err
}
