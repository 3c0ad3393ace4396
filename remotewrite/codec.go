package remotewrite

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/prompb"

	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// protoContentType is the remote-write 1.0 request body type.
const protoContentType = "application/x-protobuf"

// encoder turns one scrape round into ready-to-send WAL blocks: relabel,
// cut into blocks of at most maxSamples samples without splitting a
// series, marshal each as a prompb.WriteRequest, snappy-compress it.
// Its scratch buffers are reused across rounds, so it is not safe for
// concurrent use; Queue.Append serialises calls.
type encoder struct {
	maxSamples int
	rules      []*relabel.Config

	lb    *labels.Builder
	kept  []prompb.TimeSeries // relabelled shallow copies (only with rules)
	arena []prompb.Label      // backing store for relabelled label sets
	pbBuf []byte              // marshal scratch
	out   []byte              // compressed blocks of the current round
}

// roundStats summarises one encode call for metrics.
type roundStats struct {
	samples        int   // samples placed in blocks
	droppedRelabel int   // samples whose series the rules dropped
	maxTimestamp   int64 // newest timestamp in blocks (ms); MinInt64 if none
}

func newEncoder(maxSamples int, rules []*relabel.Config) *encoder {
	return &encoder{maxSamples: maxSamples, rules: rules, lb: labels.NewBuilder(labels.EmptyLabels())}
}

// encode builds the blocks of one round. Nothing returned aliases series.
// The blocks' Data share a buffer that the next encode call overwrites:
// wal.Queue.Append copies Data, so the buffer is reused every round.
func (e *encoder) encode(series []prompb.TimeSeries) ([]wal.Block, roundStats, error) {
	st := roundStats{maxTimestamp: math.MinInt64}
	e.out = e.out[:0]
	src := series
	switch {
	case len(e.rules) > 0:
		src = e.relabel(series, &st)
	case slices.ContainsFunc(series, isEmpty):
		// Rare: keep blocks contiguous by copying the non-empty headers.
		for i := range series {
			if !isEmpty(series[i]) {
				e.kept = append(e.kept, series[i])
			}
		}
		src = e.kept
	}

	var (
		blocks   []wal.Block
		start, n int
		blockMax = int64(math.MinInt64)
		blockMin = int64(math.MaxInt64)
		flush    = func(end int) error {
			if n == 0 {
				return nil
			}
			data, err := e.marshal(src[start:end])
			if err != nil {
				return err
			}
			blocks = append(blocks, wal.Block{Samples: n, MinTimestamp: blockMin, MaxTimestamp: blockMax, Data: data})
			st.samples += n
			st.maxTimestamp = max(st.maxTimestamp, blockMax)
			start, n, blockMax, blockMin = end, 0, math.MinInt64, math.MaxInt64
			return nil
		}
	)
	for i := range src {
		ts := &src[i]
		cnt := len(ts.Samples) + len(ts.Histograms)
		if n > 0 && n+cnt > e.maxSamples {
			if err := flush(i); err != nil {
				return nil, st, err
			}
		}
		n += cnt
		blockMax = max(blockMax, seriesMaxTimestamp(ts))
		blockMin = min(blockMin, seriesMinTimestamp(ts))
	}
	if err := flush(len(src)); err != nil {
		return nil, st, err
	}
	// Drop references to the caller's data held by the scratch slices.
	clear(e.kept)
	e.kept = e.kept[:0]
	clear(e.arena)
	e.arena = e.arena[:0]
	return blocks, st, nil
}

// relabel applies the write rules, returning the kept series with new
// label sets (sorted by name, as receivers expect).
func (e *encoder) relabel(series []prompb.TimeSeries, st *roundStats) []prompb.TimeSeries {
	e.kept = e.kept[:0]
	for i := range series {
		ts := &series[i]
		e.lb.Reset(labels.EmptyLabels())
		for _, l := range ts.Labels {
			e.lb.Set(l.Name, l.Value)
		}
		cnt := len(ts.Samples) + len(ts.Histograms)
		if cnt == 0 {
			continue // nothing to send
		}
		if !relabel.ProcessBuilder(e.lb, e.rules...) {
			st.droppedRelabel += cnt
			continue
		}
		first := len(e.arena)
		e.lb.Range(func(l labels.Label) {
			e.arena = append(e.arena, prompb.Label{Name: l.Name, Value: l.Value})
		})
		if len(e.arena) == first {
			st.droppedRelabel += cnt
			continue
		}
		ls := e.arena[first:len(e.arena):len(e.arena)]
		slices.SortFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		e.kept = append(e.kept, prompb.TimeSeries{
			Labels: ls, Samples: ts.Samples, Exemplars: ts.Exemplars, Histograms: ts.Histograms,
		})
	}
	return e.kept
}

// marshal encodes one block's WriteRequest and appends it, compressed, to
// the round's buffer, returning that part of it.
func (e *encoder) marshal(ts []prompb.TimeSeries) ([]byte, error) {
	req := prompb.WriteRequest{Timeseries: ts}
	size := req.Size()
	if cap(e.pbBuf) < size {
		e.pbBuf = make([]byte, size)
	}
	n, err := req.MarshalToSizedBuffer(e.pbBuf[:size])
	if err != nil {
		return nil, fmt.Errorf("marshal write request: %w", err)
	}
	raw := e.pbBuf[size-n : size]
	// Earlier blocks of this round keep pointing at the old array if this
	// grows it; they are never written again, so that is safe.
	start := len(e.out)
	e.out = slices.Grow(e.out, snappy.MaxEncodedLen(len(raw)))
	enc := snappy.Encode(e.out[start:cap(e.out)], raw)
	e.out = e.out[:start+len(enc)]
	return e.out[start:len(e.out):len(e.out)], nil
}

// isEmpty reports a series without samples: nothing to send.
func isEmpty(ts prompb.TimeSeries) bool { return len(ts.Samples) == 0 && len(ts.Histograms) == 0 }

func seriesMaxTimestamp(ts *prompb.TimeSeries) int64 {
	m := int64(math.MinInt64)
	for _, s := range ts.Samples {
		m = max(m, s.Timestamp)
	}
	for _, h := range ts.Histograms {
		m = max(m, h.Timestamp)
	}
	return m
}

func seriesMinTimestamp(ts *prompb.TimeSeries) int64 {
	m := int64(math.MaxInt64)
	for _, s := range ts.Samples {
		m = min(m, s.Timestamp)
	}
	for _, h := range ts.Histograms {
		m = min(m, h.Timestamp)
	}
	return m
}

// encodeMetadata compresses one metadata-only WriteRequest. It allocates:
// metadata goes out once a minute.
func encodeMetadata(md []prompb.MetricMetadata) ([]byte, error) {
	req := prompb.WriteRequest{Metadata: md}
	raw, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal metadata: %w", err)
	}
	return snappy.Encode(nil, raw), nil
}

// decodeRequest decompresses and unmarshals one encoded request (a WAL
// block or a part of one) back into its series, to split it. It allocates.
func decodeRequest(data []byte) ([]prompb.TimeSeries, error) {
	raw, err := snappy.Decode(nil, data)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("unmarshal write request: %w", err)
	}
	return req.Timeseries, nil
}

// encodeRequest marshals and compresses series as one standalone request.
// It allocates: only split parts go through it.
func encodeRequest(ts []prompb.TimeSeries) ([]byte, error) {
	req := prompb.WriteRequest{Timeseries: ts}
	raw, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal write request: %w", err)
	}
	return snappy.Encode(nil, raw), nil
}

// sampleCount counts what the encoder counts for a block: float samples
// plus native histogram samples.
func sampleCount(ts []prompb.TimeSeries) int {
	n := 0
	for i := range ts {
		n += len(ts[i].Samples) + len(ts[i].Histograms)
	}
	return n
}

// chunkBySamples cuts ts into consecutive runs of at most limit samples
// each, never splitting a series (a series above limit is a run alone).
func chunkBySamples(ts []prompb.TimeSeries, limit int) [][]prompb.TimeSeries {
	var out [][]prompb.TimeSeries
	start, n := 0, 0
	for i := range ts {
		c := len(ts[i].Samples) + len(ts[i].Histograms)
		if n > 0 && n+c > limit {
			out = append(out, ts[start:i])
			start, n = i, 0
		}
		n += c
	}
	if start < len(ts) {
		out = append(out, ts[start:])
	}
	return out
}
