package receiver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/wlog"
)

// WALSeries is one series of a Prometheus head's write-ahead log: its ref,
// its labels (as stored, so with __type__ and __unit__ under
// --enable-feature=type-and-unit-labels) and the last metadata record
// logged for that ref (nil when none was).
type WALSeries struct {
	Ref      uint64
	Labels   labels.Labels
	Metadata *metadata.Metadata
}

// ReadWAL decodes the Series and Metadata records of a stopped Prometheus
// receiver's head WAL (DIR/data/wal: its last checkpoint, then its
// segments) with Prometheus's own tsdb/wlog reader and tsdb/record decoder,
// and returns every series in ref order of first appearance. Metadata
// records exist only with --enable-feature=metadata-wal-records, which
// makes the remote-write handler log a series' metadata (type, unit, help)
// whenever it changes (Prometheus v0.316.0, storage/remote/write_handler.go
// and tsdb/head_append_v2.go). The receiver must be stopped: the last
// segment of a running one is being written.
func (r *Receiver) ReadWAL() ([]WALSeries, error) {
	if !r.Kind.isPrometheus() {
		return nil, fmt.Errorf("%s has no Prometheus WAL", r.Kind)
	}
	r.mu.Lock()
	running := r.cmd != nil
	r.mu.Unlock()
	if running {
		return nil, errors.New("stop the receiver before reading its WAL")
	}
	dir := filepath.Join(r.dir, "data", "wal")
	readers, err := walReaders(dir)
	defer func() {
		for _, rc := range readers {
			rc.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	wd := walDecoder{dec: record.NewDecoder(labels.NewSymbolTable(), slog.New(slog.DiscardHandler)), byRef: map[chunks.HeadSeriesRef]int{}}
	for _, rc := range readers {
		rd := wlog.NewReader(rc)
		for rd.Next() {
			if err := wd.add(rd.Record()); err != nil {
				return nil, fmt.Errorf("segment %d: %w", rd.Segment(), err)
			}
		}
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("read WAL %s: %w", dir, err)
		}
	}
	if len(wd.out) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, err
		}
	}
	return wd.out, nil
}

// walReaders opens the WAL in dir for reading: its last checkpoint, if
// any, then its segments. The caller closes what is returned, also with an
// error.
func walReaders(dir string) ([]io.ReadCloser, error) {
	var readers []io.ReadCloser
	cp, _, err := wlog.LastCheckpoint(dir)
	switch {
	case err == nil:
		rc, err := wlog.NewSegmentsReader(cp)
		if err != nil {
			return readers, fmt.Errorf("checkpoint %s: %w", cp, err)
		}
		readers = append(readers, rc)
	case !errors.Is(err, record.ErrNotFound):
		return readers, fmt.Errorf("checkpoint in %s: %w", dir, err)
	}
	rc, err := wlog.NewSegmentsReader(dir)
	if err != nil {
		return readers, fmt.Errorf("segments in %s: %w", dir, err)
	}
	return append(readers, rc), nil
}

// walDecoder collects the series of Series records, in ref order of first
// appearance, and attaches each Metadata record to its series.
type walDecoder struct {
	dec    record.Decoder
	byRef  map[chunks.HeadSeriesRef]int
	out    []WALSeries
	series []record.RefSeries
	mds    []record.RefMetadata
}

// add decodes one record; other record types are skipped.
func (w *walDecoder) add(rec []byte) error {
	var err error
	switch w.dec.Type(rec) {
	case record.Series:
		if w.series, err = w.dec.Series(rec, w.series[:0]); err != nil {
			return fmt.Errorf("series record: %w", err)
		}
		for _, s := range w.series {
			if _, ok := w.byRef[s.Ref]; ok {
				continue
			}
			w.byRef[s.Ref] = len(w.out)
			// The decoder's labels alias the record's bytes.
			w.out = append(w.out, WALSeries{Ref: uint64(s.Ref), Labels: s.Labels.Copy()})
		}
	case record.Metadata:
		if w.mds, err = w.dec.Metadata(rec, w.mds[:0]); err != nil {
			return fmt.Errorf("metadata record: %w", err)
		}
		for _, m := range w.mds {
			i, ok := w.byRef[m.Ref]
			if !ok {
				return fmt.Errorf("metadata record for ref %d before its series record", m.Ref)
			}
			w.out[i].Metadata = &metadata.Metadata{Type: record.ToMetricType(m.Type), Unit: m.Unit, Help: m.Help}
		}
	}
	return nil
}
