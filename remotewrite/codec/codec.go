// Package codec encodes protocol-neutral series (remotewrite/series) as
// remote write requests and decodes them back: remote write 1.0
// (prometheus.WriteRequest, marshalled directly) and 2.0
// (io.prometheus.write.v2.Request, a symbols table per request and the
// family's metadata with every series), compressed with snappy (block
// format) or zstd. Encoder turns one round into ready-to-send WAL blocks
// (write_relabel_configs applied, cut by max_samples_per_send, never
// splitting a series); Compressor decodes a block again when the sender
// has to split it or transcode it to 1.0, and encodes 1.0 metadata
// requests. It knows nothing of HTTP or of the endpoint's config beyond
// the message and compression names.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// Protobuf messages (protobuf_message) and compressions (compression), as
// Prometheus spells them.
const (
	MessageV1 = "prometheus.WriteRequest"
	MessageV2 = "io.prometheus.write.v2.Request"

	CompressionSnappy = "snappy"
	CompressionZstd   = "zstd"
)

// Content types and protocol versions of the two messages (remote write
// 2.0 specification, "Content-Type" and "X-Prometheus-Remote-Write-Version":
// 1.x receivers get the 1.0 values).
const (
	ContentTypeV1 = "application/x-protobuf"
	ContentTypeV2 = "application/x-protobuf;proto=" + MessageV2
	VersionV1     = "0.1.0"
	VersionV2     = "2.0.0"
)

// Format is how one WAL block (or one request) is encoded: the protobuf
// message and the compression. It is stored with every block (wal.Block's
// Format), so a block is sent as it was written whatever the config says
// now; only a receiver refusing 2.0 makes the sender transcode it. Format 0
// is what every WAL record before record version 3 holds.
type Format uint8

const (
	FormatV1   Format = 0      // prometheus.WriteRequest, snappy: every WAL record before version 3
	FormatV2   Format = 1 << 0 // io.prometheus.write.v2.Request, else prometheus.WriteRequest
	FormatZstd Format = 1 << 1 // zstd, else snappy (block format)
	FormatMask        = FormatV2 | FormatZstd
)

// V2 reports io.prometheus.write.v2.Request; Zstd reports zstd.
func (f Format) V2() bool   { return f&FormatV2 != 0 }
func (f Format) Zstd() bool { return f&FormatZstd != 0 }

// ContentType is the request's Content-Type header.
func (f Format) ContentType() string {
	if f.V2() {
		return ContentTypeV2
	}
	return ContentTypeV1
}

// Version is the request's X-Prometheus-Remote-Write-Version header.
func (f Format) Version() string {
	if f.V2() {
		return VersionV2
	}
	return VersionV1
}

// Encoding is the request's Content-Encoding header.
func (f Format) Encoding() string {
	if f.Zstd() {
		return CompressionZstd
	}
	return CompressionSnappy
}

// String names the format for logs, e.g. "io.prometheus.write.v2.Request+zstd".
func (f Format) String() string {
	m := MessageV1
	if f.V2() {
		m = MessageV2
	}
	return m + "+" + f.Encoding()
}

// FormatOf is the format an endpoint's protobuf_message and compression
// ask for (values as validated by the config: anything else is 1.0 and
// snappy).
func FormatOf(message, compression string) Format {
	var f Format
	if message == MessageV2 {
		f |= FormatV2
	}
	if compression == CompressionZstd {
		f |= FormatZstd
	}
	return f
}

// Compressor compresses and decompresses requests. One per endpoint queue, safe
// for concurrent use: the zstd encoder and decoder are reused (klauspost's
// EncodeAll and DecodeAll may be called concurrently).
type Compressor struct {
	zenc *zstd.Encoder
	zdec *zstd.Decoder
}

// NewCompressor builds a Compressor; it fails only if zstd cannot be set up.
func NewCompressor() (*Compressor, error) {
	// One goroutine each: requests are compressed by the caller's
	// goroutine, and EncodeAll does not need more. SpeedDefault: with 2.0
	// series grouped by name (grouper) it gives 3.63 bytes per sample in
	// process at 200 sandboxes against 3.61 at SpeedBetterCompression, for
	// a quarter less push CPU (BenchmarkPushRound200V2: 1.41 against 1.60
	// CPU-s per million samples, 2.0 + snappy 1.30); SpeedBestCompression
	// costs twice the CPU and compresses these requests worse (4.59 on the
	// wire ungrouped). docs/benchmarks.md, "Remote write bandwidth".
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecodedRequest))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &Compressor{zenc: enc, zdec: dec}, nil
}

// maxDecodedRequest bounds a decompressed request read back from the WAL.
const maxDecodedRequest = 1 << 30

// Compress appends raw, compressed as f says, to dst.
func (c *Compressor) Compress(dst, raw []byte, f Format) []byte {
	if f.Zstd() {
		return c.zenc.EncodeAll(raw, dst)
	}
	// s2's Snappy-compatible block encoder: the same format (any Snappy
	// decoder reads it, golang/snappy's in decompress included), about
	// twice as fast as golang/snappy's encoder (BenchmarkCompressSnappy).
	start := len(dst)
	dst = slices.Grow(dst, s2.MaxEncodedLen(len(raw)))
	enc := s2.EncodeSnappy(dst[start:cap(dst)], raw)
	return dst[:start+len(enc)]
}

// Decompress returns data decompressed as f says.
func (c *Compressor) Decompress(data []byte, f Format) ([]byte, error) {
	if f.Zstd() {
		raw, err := c.zdec.DecodeAll(data, nil)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return raw, nil
	}
	raw, err := snappy.Decode(nil, data)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	return raw, nil
}

// Encoder turns one scrape round into ready-to-send WAL blocks: relabel,
// cut into blocks of at most maxSamples samples without splitting a
// series, marshal each as the block's protobuf message, compress it. Its
// scratch buffers are reused across rounds, so it is not safe for
// concurrent use (the endpoint queue serialises its rounds).
type Encoder struct {
	maxSamples int
	rules      []*relabel.Config
	comp       *Compressor

	lb      *labels.Builder
	kept    []series.Series // relabelled shallow copies (only with rules)
	arena   []labels.Label  // backing store for relabelled label sets
	scratch []labels.Label  // one series' labels, for relabelling
	out     []byte          // compressed blocks of the current round
	m       marshaler
	g       grouper // 2.0 only: series grouped by metric name
}

// marshaler holds the scratch of one protobuf marshalling; reused.
type marshaler struct {
	raw []byte
	// 1.0: the slot messages of the values being written
	slots slotMsgs
	// 2.0
	syms writev2.SymbolsTable
	ts2  []writev2.TimeSeries
	refs []uint32
	ss2  []writev2.Sample
	v2   refCache
}

// RoundStats summarises one Encode call for metrics.
type RoundStats struct {
	Samples        int   // samples placed in blocks
	DroppedRelabel int   // samples whose series the rules dropped
	MaxTimestamp   int64 // newest timestamp in blocks (ms); MinInt64 if none
}

// NewEncoder returns an Encoder cutting blocks of at most maxSamples
// samples, applying rules (may be nil) and compressing with comp.
func NewEncoder(maxSamples int, rules []*relabel.Config, comp *Compressor) *Encoder {
	return &Encoder{maxSamples: maxSamples, rules: rules, comp: comp, lb: labels.NewBuilder(labels.EmptyLabels())}
}

// Encode builds the blocks of one round in format f. Nothing returned
// aliases ss. The blocks' Data share a buffer that the next encode call
// overwrites: wal.Queue.Append copies Data, so the buffer is reused every
// round.
func (e *Encoder) Encode(ss []series.Series, f Format) ([]wal.Block, RoundStats, error) {
	st := RoundStats{MaxTimestamp: math.MinInt64}
	e.out = e.out[:0]
	blocks, err := e.cut(e.prepare(ss, f, &st), f, &st)
	// Drop references to the caller's data held by the scratch slices.
	clear(e.kept)
	e.kept = e.kept[:0]
	clear(e.arena)
	e.arena = e.arena[:0]
	clear(e.scratch)
	e.g.release()
	e.m.release()
	if err != nil {
		return nil, st, err
	}
	return blocks, st, nil
}

// prepare returns the series of ss to send, in the order to send them:
// relabelled (counting what the rules drop in st), without series that
// have no samples, grouped by metric name for 2.0.
func (e *Encoder) prepare(ss []series.Series, f Format, st *RoundStats) []series.Series {
	src := ss
	switch {
	case len(e.rules) > 0:
		src = e.relabel(ss, st)
	case slices.ContainsFunc(ss, isEmpty):
		// Rare: keep blocks contiguous by copying the non-empty headers.
		for i := range ss {
			if !isEmpty(ss[i]) {
				e.kept = append(e.kept, ss[i])
			}
		}
		src = e.kept
	}
	if f.V2() {
		src = e.g.group(src)
	}
	return src
}

// cut cuts src into blocks of at most maxSamples samples, never splitting
// a series, and encodes each into e.out, counting them in st.
func (e *Encoder) cut(src []series.Series, f Format, st *RoundStats) ([]wal.Block, error) {
	var (
		blocks   []wal.Block
		start, n int
		blockMax = int64(math.MinInt64)
		blockMin = int64(math.MaxInt64)
	)
	flush := func(end int) error {
		if n == 0 {
			return nil
		}
		// Earlier blocks of this round keep pointing at the old array if
		// this grows it; they are never written again, so that is safe.
		at := len(e.out)
		if f == FormatV1 {
			e.out = e.m.appendSnappyV1(e.out, src[start:end])
		} else {
			raw, err := e.m.marshal(src[start:end], f)
			if err != nil {
				return err
			}
			e.out = e.comp.Compress(e.out, raw, f)
		}
		data := e.out[at:len(e.out):len(e.out)]
		blocks = append(blocks, wal.Block{Samples: n, MinTimestamp: blockMin, MaxTimestamp: blockMax, Format: uint8(f), Data: data})
		st.Samples += n
		st.MaxTimestamp = max(st.MaxTimestamp, blockMax)
		start, n, blockMax, blockMin = end, 0, math.MinInt64, math.MaxInt64
		return nil
	}
	for i := range src {
		s := &src[i]
		if cnt := len(s.Samples); n > 0 && n+cnt > e.maxSamples {
			if err := flush(i); err != nil {
				return nil, err
			}
		}
		n += len(s.Samples)
		lo, hi := TimeRange(s)
		blockMax, blockMin = max(blockMax, hi), min(blockMin, lo)
	}
	if err := flush(len(src)); err != nil {
		return nil, err
	}
	return blocks, nil
}

// grouper reorders the series of one Append so that the series of one
// metric name are adjacent, names in byte order, and otherwise in their
// given order (a stable counting sort on the name). The compressor then
// finds the same name, help and label references and the same values a
// few bytes back (the same metric of the sandbox before), and a block's
// symbols table holds the help texts of fewer families. At 200 sandboxes
// on the wire (docs/benchmarks.md, "Remote write bandwidth"): 2.0 + zstd
// 4.07 to 3.30 bytes per sample, 2.0 + snappy 11.26 to 8.69. A full sort
// by label set gains 0.02 more for ten times the CPU. 1.0, whose series
// carry their label strings, compresses worse grouped (zstd 5.71 to 6.16
// in process), so only 2.0 groups. Remote write sets no order between
// series, and the order within one series is kept: a series' samples all
// carry its name, so they stay in order, as do the blocks.
type grouper struct {
	idx   map[string]int32 // name -> group, this call only
	names []string         // group -> name
	order []int32          // group ids in name order
	start []int32          // group -> its next slot in out
	gid   []int32          // series -> group
	out   []series.Series
}

func (g *grouper) group(ss []series.Series) []series.Series {
	if len(ss) < 2 {
		return ss
	}
	if g.idx == nil {
		g.idx = map[string]int32{}
	}
	g.gid = g.gid[:0]
	for i := range ss {
		name := ss[i].Name()
		id, ok := g.idx[name]
		if !ok {
			id = int32(len(g.names))
			g.idx[name] = id
			g.names = append(g.names, name)
		}
		g.gid = append(g.gid, id)
	}
	if len(g.names) == 1 {
		return ss
	}
	// start[id]: where group id begins, groups in name order.
	g.order, g.start = g.order[:0], slices.Grow(g.start[:0], len(g.names))[:len(g.names)]
	clear(g.start)
	for id := range g.names {
		g.order = append(g.order, int32(id))
	}
	slices.SortFunc(g.order, func(a, b int32) int { return strings.Compare(g.names[a], g.names[b]) })
	for _, id := range g.gid {
		g.start[id]++ // the group's size, first
	}
	pos := int32(0)
	for _, id := range g.order {
		pos, g.start[id] = pos+g.start[id], pos
	}
	g.out = slices.Grow(g.out[:0], len(ss))[:len(ss)]
	for i, id := range g.gid {
		g.out[g.start[id]] = ss[i]
		g.start[id]++
	}
	return g.out
}

// release drops the references to the caller's series and names.
func (g *grouper) release() {
	clear(g.out)
	g.out = g.out[:0]
	clear(g.idx)
	clear(g.names)
	g.names = g.names[:0]
}

// relabel applies the write rules, returning the kept series with new
// label sets (sorted by name, as receivers expect).
func (e *Encoder) relabel(ss []series.Series, st *RoundStats) []series.Series {
	e.kept = e.kept[:0]
	for i := range ss {
		s := &ss[i]
		cnt := len(s.Samples)
		if cnt == 0 {
			continue // nothing to send
		}
		e.lb.Reset(labels.EmptyLabels())
		e.scratch = s.AppendLabels(e.scratch[:0])
		for _, l := range e.scratch {
			e.lb.Set(l.Name, l.Value)
		}
		if !relabel.ProcessBuilder(e.lb, e.rules...) {
			st.DroppedRelabel += cnt
			continue
		}
		first := len(e.arena)
		e.lb.Range(func(l labels.Label) { e.arena = append(e.arena, l) })
		if len(e.arena) == first {
			st.DroppedRelabel += cnt
			continue
		}
		ls := e.arena[first:len(e.arena):len(e.arena)]
		slices.SortFunc(ls, func(a, b labels.Label) int { return strings.Compare(a.Name, b.Name) })
		e.kept = append(e.kept, series.Series{Labels: ls, Samples: s.Samples, Metadata: s.Metadata})
	}
	return e.kept
}

// marshal encodes ss as one request of format f's message into m.raw and
// returns it (valid until the next call).
func (m *marshaler) marshal(ss []series.Series, f Format) ([]byte, error) {
	if f.V2() {
		return m.marshalV2(ss)
	}
	return m.marshalV1(ss)
}

// marshalV1 marshals ss as a prometheus.WriteRequest into m.raw, straight
// from the neutral series: the same bytes as prompb's generated marshaller
// (fields in number order, zero scalars left out, every label and sample
// message written even when empty; TestMarshalV1MatchesPrompb), without
// copying the series into prompb types first and in one forward pass (the
// generated code, which sizes every message twice, was a third of the
// push path: BenchmarkMarshalV1). A template series is written behind
// room for a 2-byte length (its size is known once written: most are
// 128 to 16383 bytes) and moved when its length takes another width
// (patchLen), so its labels are not sized before they are copied.
func (m *marshaler) marshalV1(ss []series.Series) ([]byte, error) {
	var w writerV1
	b := m.raw[:0]
	for i := range ss {
		b = w.appendSeries(b, &ss[i], &m.slots)
	}
	m.raw = b
	return b, nil
}

// writerV1 appends the series of one 1.0 request, remembering the
// prepared values of the last templated series (consecutive series of a
// sandbox share them).
type writerV1 struct {
	lastV *series.Values
	vp    *valsPrep
}

// appendSeries appends s as one WriteRequest.timeseries field.
func (w *writerV1) appendSeries(b []byte, s *series.Series, slots *slotMsgs) []byte {
	b = append(b, 0x0a) // WriteRequest.timeseries
	if s.Template == nil {
		b = binary.AppendUvarint(b, uint64(seriesSizeV1(s)))
		for _, l := range s.Labels {
			b = append(b, 0x0a) // TimeSeries.labels
			b = binary.AppendUvarint(b, uint64(labelSizeV1(l)))
			b = appendStringField(b, 0x0a, l.Name)
			b = appendStringField(b, 0x12, l.Value)
		}
		return appendSamplesV1(b, s.Samples)
	}
	// The prepared form: the template's and the values' label bytes,
	// built once (prepared.go).
	if w.vp == nil || s.Values != w.lastV {
		w.lastV, w.vp = s.Values, prepValues(s.Values)
	}
	at := len(b)
	b = append(b, 0, 0)
	b = prepTemplate(s.Template).appendLabelsV1(b, slots, w.vp)
	b = appendSamplesV1(b, s.Samples)
	return patchLen(b, at, 2)
}

// snappyPiece is how much of a marshalled 1.0 request appendSnappyV1 holds
// before compressing it. Each piece is compressed on its own, so a series
// finds no match in an earlier piece; the same series of the sandbox
// before lies one sandbox's series back (759 series of ~200 bytes). In
// the harness (200 sandboxes, max_samples_per_send 10000: ~2 MB a
// request) the wire took 21.15 bytes a sample compressed whole, 21.77 at
// 1 MiB pieces, 22.28 at 512 KiB and 23.56 at 256 KiB
// (docs/benchmarks.md, "Session 6, push side and runtime"). A request of
// at most 1 MiB (about 5000 samples; the default max_samples_per_send is
// 2000) is one piece, compressed whole as before.
const snappyPiece = 1 << 20

// appendSnappyV1 appends ss as one 1.0 request compressed in Snappy's
// block format to dst: a block that decodes to the bytes marshalV1 gives,
// but marshalled and compressed snappyPiece bytes at a time, so the
// scratch is one piece (1 MiB plus a series) instead of the whole
// marshalled request (about 200 bytes a series: 2 MB at
// max_samples_per_send 10000), and dst grows by the compressed size plus
// one piece's worst case instead of the whole request's (s2.MaxEncodedLen).
// A Snappy block is the uvarint length of the uncompressed bytes followed
// by elements, literals and copies of output already decoded
// (format_description.txt in google/snappy); a piece's copies reach only
// into the piece, so the elements of pieces compressed alone concatenate
// into one valid block (golang/snappy's Encode builds its blocks so, of
// 64 KiB pieces). The length is known only at the end: maxLenVarint bytes
// are left for it and the compressed bytes moved back over what the
// varint does not use.
func (m *marshaler) appendSnappyV1(dst []byte, ss []series.Series) []byte {
	at := len(dst)
	dst = append(dst, make([]byte, maxLenVarint)...)
	var w writerV1
	b := m.raw[:0]
	total := 0
	for i := range ss {
		b = w.appendSeries(b, &ss[i], &m.slots)
		for len(b) >= snappyPiece {
			dst = appendSnappyElements(dst, b[:snappyPiece])
			total += snappyPiece
			b = b[:copy(b, b[snappyPiece:])]
		}
	}
	dst = appendSnappyElements(dst, b)
	total += len(b)
	m.raw = b[:0]
	n := binary.PutUvarint(dst[at:], uint64(total))
	copy(dst[at+n:], dst[at+maxLenVarint:])
	return dst[:len(dst)-(maxLenVarint-n)]
}

// maxLenVarint is the room appendSnappyV1 leaves for a block's length: a
// request's marshalled size fits a uint32 (Snappy's limit as well).
const maxLenVarint = binary.MaxVarintLen32

// appendSnappyElements appends p compressed as the elements of a Snappy
// block, without the block's length, to dst (s2's Snappy-compatible
// encoder, as Compress; its length prefix is dropped).
func appendSnappyElements(dst, p []byte) []byte {
	if len(p) == 0 {
		return dst
	}
	start := len(dst)
	dst = slices.Grow(dst, s2.MaxEncodedLen(len(p)))
	enc := s2.EncodeSnappy(dst[start:cap(dst)], p)
	h := varintSize(uint64(len(p)))
	n := copy(dst[start:cap(dst)], enc[h:])
	return dst[:start+n]
}

// patchLen writes the size of the message b[at+room:] as a varint at
// b[at:], where room bytes were left for it, moving the message when the
// varint is shorter or longer.
func patchLen(b []byte, at, room int) []byte {
	n := len(b) - at - room
	w := varintSize(uint64(n))
	switch {
	case w < room:
		copy(b[at+w:], b[at+room:])
		b = b[:at+w+n]
	case w > room:
		b = slices.Grow(b, w-room)[:at+w+n]
		copy(b[at+w:], b[at+room:at+room+n])
	}
	binary.PutUvarint(b[at:], uint64(n))
	return b
}

// appendSamplesV1 appends xs as 1.0 Sample messages.
func appendSamplesV1(b []byte, xs []series.Sample) []byte {
	for _, x := range xs {
		b = append(b, 0x12) // TimeSeries.samples
		b = binary.AppendUvarint(b, uint64(sampleSizeV1(x)))
		if x.Value != 0 {
			b = append(b, 0x09)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x.Value))
		}
		if x.Timestamp != 0 {
			b = append(b, 0x10)
			b = binary.AppendUvarint(b, uint64(x.Timestamp))
		}
	}
	return b
}

func varintSize(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func stringFieldSize(s string) int {
	if s == "" {
		return 0
	}
	return 1 + varintSize(uint64(len(s))) + len(s)
}

func appendStringField(b []byte, tag byte, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func labelSizeV1(l labels.Label) int { return stringFieldSize(l.Name) + stringFieldSize(l.Value) }

func sampleSizeV1(x series.Sample) int {
	n := 0
	if x.Value != 0 {
		n += 9
	}
	if x.Timestamp != 0 {
		n += 1 + varintSize(uint64(x.Timestamp))
	}
	return n
}

func seriesSizeV1(s *series.Series) int {
	n := 0
	for _, l := range s.Labels {
		ls := labelSizeV1(l)
		n += 1 + varintSize(uint64(ls)) + ls
	}
	return n + samplesSizeV1(s.Samples)
}

func samplesSizeV1(xs []series.Sample) int {
	n := 0
	for _, x := range xs {
		s := sampleSizeV1(x)
		n += 1 + varintSize(uint64(s)) + s
	}
	return n
}

// marshalV2 builds an io.prometheus.write.v2.Request: one symbols table
// per request (its first symbol is "", as the specification requires;
// writev2.SymbolsTable keeps it), label references in the series' label
// order (sorted by name), the family's type, help and unit with every
// series, and marshals it.
func (m *marshaler) marshalV2(ss []series.Series) ([]byte, error) {
	if m.syms.Symbols() == nil {
		m.syms = writev2.NewSymbolTable()
	}
	m.syms.Reset()
	m.v2.reset()
	m.ts2, m.refs, m.ss2 = m.ts2[:0], m.refs[:0], m.ss2[:0]
	nr, ns := 0, 0
	for i := range ss {
		if ss[i].Template != nil {
			nr += 2 * ss[i].Template.Len()
		} else {
			nr += 2 * len(ss[i].Labels)
		}
		ns += len(ss[i].Samples)
	}
	m.refs = slices.Grow(m.refs, nr)
	m.ss2 = slices.Grow(m.ss2, ns)
	for i := range ss {
		s := &ss[i]
		r0, s0 := len(m.refs), len(m.ss2)
		if s.Template != nil {
			m.refs = m.v2.appendRefs(m.refs, &m.syms, s.Template, s.Values)
		} else {
			for _, l := range s.Labels {
				m.refs = append(m.refs, m.syms.Symbolize(l.Name), m.syms.Symbolize(l.Value))
			}
		}
		for _, x := range s.Samples {
			m.ss2 = append(m.ss2, writev2.Sample{Value: x.Value, Timestamp: x.Timestamp})
		}
		ts := writev2.TimeSeries{LabelsRefs: m.refs[r0:len(m.refs):len(m.refs)], Samples: m.ss2[s0:len(m.ss2):len(m.ss2)]}
		if md := s.Metadata; md != nil {
			help, unit := m.v2.metadataRefs(&m.syms, md)
			ts.Metadata = writev2.Metadata{Type: writev2.FromMetadataType(md.Type), HelpRef: help, UnitRef: unit}
		}
		m.ts2 = append(m.ts2, ts)
	}
	req := writev2.Request{Symbols: m.syms.Symbols(), Timeseries: m.ts2}
	raw, err := req.OptimizedMarshal(m.raw)
	if err != nil {
		return nil, fmt.Errorf("marshal write request: %w", err)
	}
	m.raw = raw
	return raw, nil
}

// release drops the references to the caller's strings that the scratch
// holds, keeping the capacity.
func (m *marshaler) release() {
	m.slots.vals = nil
	clear(m.ts2)
	m.v2.reset()
	if m.syms.Symbols() != nil {
		m.syms.Reset()
	}
}

// isEmpty reports a series without samples: nothing to send.
func isEmpty(s series.Series) bool { return len(s.Samples) == 0 }

// TimeRange returns the oldest and newest timestamp of s (MaxInt64 and
// MinInt64 when it has no sample).
func TimeRange(s *series.Series) (lo, hi int64) {
	lo, hi = math.MaxInt64, math.MinInt64
	for _, x := range s.Samples {
		lo, hi = min(lo, x.Timestamp), max(hi, x.Timestamp)
	}
	return lo, hi
}

// EncodeMetadata compresses one metadata-only prometheus.WriteRequest (1.0:
// 2.0 sends metadata with every series). It allocates: metadata goes out
// once a minute.
func (c *Compressor) EncodeMetadata(md []series.Metadata, f Format) ([]byte, error) {
	pm := make([]prompb.MetricMetadata, len(md))
	for i, m := range md {
		pm[i] = prompb.MetricMetadata{Type: prompb.FromMetadataType(m.Type), MetricFamilyName: m.Family, Help: m.Help, Unit: m.Unit}
	}
	req := prompb.WriteRequest{Metadata: pm}
	raw, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal metadata: %w", err)
	}
	return c.Compress(nil, raw, f&^FormatV2), nil
}

// DecodeRequest decompresses and unmarshals one encoded request (a WAL
// block or a part of one) back into its series, to split or transcode it.
// It allocates. Series of one 2.0 family share one *series.Metadata.
func (c *Compressor) DecodeRequest(data []byte, f Format) ([]series.Series, error) {
	raw, err := c.Decompress(data, f)
	if err != nil {
		return nil, err
	}
	if f.V2() {
		return decodeV2(raw)
	}
	return decodeV1(raw)
}

// decodeV1 unmarshals a prometheus.WriteRequest into series.
func decodeV1(raw []byte) ([]series.Series, error) {
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("unmarshal write request: %w", err)
	}
	out := make([]series.Series, len(req.Timeseries))
	for i, ts := range req.Timeseries {
		s := series.Series{Labels: make([]labels.Label, len(ts.Labels)), Samples: make([]series.Sample, len(ts.Samples))}
		for j, l := range ts.Labels {
			s.Labels[j] = labels.Label{Name: l.Name, Value: l.Value}
		}
		for j, x := range ts.Samples {
			s.Samples[j] = series.Sample{Value: x.Value, Timestamp: x.Timestamp}
		}
		out[i] = s
	}
	return out, nil
}

// decodeV2 unmarshals an io.prometheus.write.v2.Request into series;
// series of one family share one *series.Metadata.
func decodeV2(raw []byte) ([]series.Series, error) {
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("unmarshal write request: %w", err)
	}
	mds := metadataOf{req: &req, seen: map[mdKey]*series.Metadata{}}
	out := make([]series.Series, len(req.Timeseries))
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		ls, err := labelsOf(ts.LabelsRefs, req.Symbols)
		if err != nil {
			return nil, err
		}
		s := series.Series{Labels: ls, Samples: make([]series.Sample, len(ts.Samples))}
		for j, x := range ts.Samples {
			s.Samples[j] = series.Sample{Value: x.Value, Timestamp: x.Timestamp}
		}
		if s.Metadata, err = mds.of(ts); err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// labelsOf resolves a 2.0 series' label references against symbols.
func labelsOf(refs []uint32, symbols []string) ([]labels.Label, error) {
	if len(refs)%2 != 0 {
		return nil, errors.New("odd number of label references")
	}
	for _, r := range refs {
		if int(r) >= len(symbols) {
			return nil, fmt.Errorf("symbol reference %d outside the table (%d symbols)", r, len(symbols))
		}
	}
	ls := make([]labels.Label, len(refs)/2)
	for j := range ls {
		ls[j] = labels.Label{Name: symbols[refs[2*j]], Value: symbols[refs[2*j+1]]}
	}
	return ls, nil
}

// mdKey identifies a family's metadata within one 2.0 request.
type mdKey struct {
	typ        writev2.Metadata_MetricType
	help, unit uint32
}

// metadataOf hands out one *series.Metadata per distinct metadata of a
// 2.0 request.
type metadataOf struct {
	req  *writev2.Request
	seen map[mdKey]*series.Metadata
}

// of returns ts's metadata, nil when it has none.
func (m metadataOf) of(ts *writev2.TimeSeries) (*series.Metadata, error) {
	k := mdKey{ts.Metadata.Type, ts.Metadata.HelpRef, ts.Metadata.UnitRef}
	if k == (mdKey{}) {
		return nil, nil
	}
	if md, ok := m.seen[k]; ok {
		return md, nil
	}
	pm, err := ts.ToMetadata(m.req.Symbols)
	if err != nil {
		return nil, err
	}
	md := &series.Metadata{Type: pm.Type, Help: pm.Help, Unit: pm.Unit}
	if md.Type == model.MetricTypeUnknown {
		md.Type = ""
	}
	m.seen[k] = md
	return md, nil
}

// EncodeRequest marshals and compresses ss as one standalone request of
// format f. It allocates: only split and transcoded parts go through it.
func (c *Compressor) EncodeRequest(ss []series.Series, f Format) ([]byte, error) {
	var m marshaler
	raw, err := m.marshal(ss, f)
	if err != nil {
		return nil, err
	}
	return c.Compress(nil, raw, f), nil
}

// ChunkBySamples cuts ss into consecutive runs of at most limit samples
// each, never splitting a series (a series above limit is a run alone).
func ChunkBySamples(ss []series.Series, limit int) [][]series.Series {
	var out [][]series.Series
	start, n := 0, 0
	for i := range ss {
		c := len(ss[i].Samples)
		if n > 0 && n+c > limit {
			out = append(out, ss[start:i])
			start, n = i, 0
		}
		n += c
	}
	if start < len(ss) {
		out = append(out, ss[start:])
	}
	return out
}
