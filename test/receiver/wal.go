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
	var readers []io.ReadCloser
	defer func() {
		for _, rc := range readers {
			rc.Close()
		}
	}()
	cp, _, err := wlog.LastCheckpoint(dir)
	switch {
	case err == nil:
		rc, err := wlog.NewSegmentsReader(cp)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", cp, err)
		}
		readers = append(readers, rc)
	case !errors.Is(err, record.ErrNotFound):
		return nil, fmt.Errorf("checkpoint in %s: %w", dir, err)
	}
	rc, err := wlog.NewSegmentsReader(dir)
	if err != nil {
		return nil, fmt.Errorf("segments in %s: %w", dir, err)
	}
	readers = append(readers, rc)

	dec := record.NewDecoder(labels.NewSymbolTable(), slog.New(slog.DiscardHandler))
	byRef := map[chunks.HeadSeriesRef]int{}
	var out []WALSeries
	var series []record.RefSeries
	var mds []record.RefMetadata
	for _, rc := range readers {
		rd := wlog.NewReader(rc)
		for rd.Next() {
			rec := rd.Record()
			switch dec.Type(rec) {
			case record.Series:
				if series, err = dec.Series(rec, series[:0]); err != nil {
					return nil, fmt.Errorf("series record in segment %d: %w", rd.Segment(), err)
				}
				for _, s := range series {
					if _, ok := byRef[s.Ref]; ok {
						continue
					}
					byRef[s.Ref] = len(out)
					// The decoder's labels alias the record's bytes.
					out = append(out, WALSeries{Ref: uint64(s.Ref), Labels: s.Labels.Copy()})
				}
			case record.Metadata:
				if mds, err = dec.Metadata(rec, mds[:0]); err != nil {
					return nil, fmt.Errorf("metadata record in segment %d: %w", rd.Segment(), err)
				}
				for _, m := range mds {
					i, ok := byRef[m.Ref]
					if !ok {
						return nil, fmt.Errorf("metadata record for ref %d before its series record", m.Ref)
					}
					out[i].Metadata = &metadata.Metadata{Type: record.ToMetricType(m.Type), Unit: m.Unit, Help: m.Help}
				}
			}
		}
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("read WAL %s: %w", dir, err)
		}
	}
	if len(out) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, err
		}
	}
	return out, nil
}
