package exposition

import (
	"strconv"
	"sync"

	"github.com/prometheus/common/model"
)

// Lines is one sandbox's pull exposition of one round: lines grouped in
// runs by family. A line is kept as its series' shared Series (the head)
// and its value: the sandbox's labels are written between the two when the
// exposition is served. The series and runs of the lines, which stay the
// same from round to round while the exposition keeps its structure and
// are the same for every sandbox serving the same structure, are one
// shared Shape (ShapeTable); what a round holds of its own is the values'
// text (value [timestamp] newline, ~5 bytes a line for a shim's) and the
// offset of each run in it. Filled by one goroutine (the sandbox's scrape),
// sealed by Finish, then owned by a Snapshot and read-only.
type Lines struct {
	// Meta marks families only (no lines): pulls are idle, the round only
	// needs the families' metadata.
	Meta bool
	// Labels is the sandbox's labels, rendered (SandboxLabels).
	Labels string
	shape  *Shape
	b      *shapeBuilder // while filling: the lines' series and runs
	buf    []byte        // per line: value [timestamp] newline
	starts []int32       // per run of shape: the offset of its first line's value in buf
	*Families
}

// Shape is the series of a Lines' lines, in order, and their runs by
// family. Immutable; shared by every round and every sandbox whose lines
// have the same series and runs (at 200 sandboxes serving the same
// exposition, one Shape instead of 200 per snapshot alive: 8 bytes a
// line and 12 a run).
type Shape struct {
	series []*Series
	runs   []run
}

// FamilyMeta is the HELP/TYPE of a family as one exposition (or, merged,
// all of them) gave it.
type FamilyMeta struct {
	Name, Help string
	HasHelp    bool
	// UTF8 is set when a line quotes a name (Series.UTF8).
	UTF8 bool
	Type model.MetricType
}

// famMeta is a FamilyMeta with the family's distinct sample names,
// names[namesLo:namesHi] of its Lines.
type famMeta struct {
	FamilyMeta
	namesLo, namesHi int
}

// run is lines [lo, hi) of family fam (int32: a sandbox's exposition is
// bounded by the scrape's body limit, far below 2^31 lines).
type run struct{ fam, lo, hi int32 }

// LinesSize is the lengths of a Lines' per-round slices, to size the next
// one.
type LinesSize struct{ buf, runs int }

// NewLines returns empty Lines with room for what size describes (plus a
// sixteenth), so appending does not grow it by doubling (which would leave
// up to half of it unused for the snapshot's lifetime).
func NewLines(size LinesSize) *Lines {
	return &Lines{
		buf:      make([]byte, 0, size.buf+size.buf/16),
		starts:   make([]int32, 0, size.runs),
		Families: &Families{},
	}
}

// NewMeta returns Lines that keep families only (Meta).
func NewMeta() *Lines {
	return &Lines{Meta: true, Families: &Families{}}
}

// Reset empties r for reuse, keeping the capacity of its values (the
// shape and the families are shared: they are let go).
func (r *Lines) Reset() {
	r.putBuilder()
	r.shape = nil
	r.buf, r.starts = r.buf[:0], r.starts[:0]
	r.Families = &Families{}
}

// Size returns the lengths of r's per-round slices.
func (r *Lines) Size() LinesSize {
	return LinesSize{buf: len(r.buf), runs: len(r.starts)}
}

// shapeBuilders holds the scratch series and runs of Lines being filled,
// one per parse in flight.
var shapeBuilders sync.Pool // *shapeBuilder

// shapeBuilder collects the shape of Lines being filled; reused.
type shapeBuilder struct{ Shape }

// Append adds the line of series s with value v (and its own timestamp
// when tsp is not nil) to family fam, the index the family will have in
// the AddFamily calls of this round. Not after Finish.
func (r *Lines) Append(fam int, s *Series, v float64, tsp *int64) {
	if r.b == nil {
		r.b, _ = shapeBuilders.Get().(*shapeBuilder)
		if r.b == nil {
			r.b = &shapeBuilder{}
		}
	}
	b := r.b
	start, line := len(r.buf), int32(len(b.series))
	b.series = append(b.series, s)
	r.buf = appendValue(r.buf, v)
	if tsp != nil {
		r.buf = append(r.buf, ' ')
		r.buf = strconv.AppendInt(r.buf, *tsp, 10)
	}
	r.buf = append(r.buf, '\n')
	if n := len(b.runs); n > 0 && b.runs[n-1].fam == int32(fam) && b.runs[n-1].hi == line {
		b.runs[n-1].hi++
	} else {
		b.runs = append(b.runs, run{fam: int32(fam), lo: line, hi: line + 1})
		r.starts = append(r.starts, int32(start))
	}
}

// Finish seals r: its shape becomes the shared Shape equal to the lines
// appended, taken from t (nil: r's own copy); last, the sandbox's previous
// round's shape, is the cheap common case (compared without hashing or
// locking). It returns that shape, for the sandbox to pass as last in its
// next round (nil when r has no lines). Finish is idempotent.
func (r *Lines) Finish(t *ShapeTable, last *Shape) *Shape {
	if r.b == nil {
		return r.shape
	}
	switch {
	case len(r.b.series) == 0:
		r.shape = nil
	case t == nil:
		r.shape = r.b.clone()
	default:
		r.shape = t.intern(r.b, last)
	}
	r.putBuilder()
	return r.shape
}

func (r *Lines) putBuilder() {
	if r.b == nil {
		return
	}
	clear(r.b.series)
	r.b.series, r.b.runs = r.b.series[:0], r.b.runs[:0]
	shapeBuilders.Put(r.b)
	r.b = nil
}

// SetFamilies gives r the round's families (shared, read-only: see
// FamilyTable), whose indexes the fam arguments of Append are.
func (r *Lines) SetFamilies(f *Families) { r.Families = f }

// Len is the number of lines.
func (r *Lines) Len() int {
	if r.b != nil {
		return len(r.b.series)
	}
	return len(r.series())
}

// Shape returns r's shape once Finish sealed it (nil: no lines): equal
// pointers mean shared storage.
func (r *Lines) Shape() *Shape { return r.shape }

// series is the series of r's lines, in order (after Finish).
func (r *Lines) series() []*Series {
	if r.shape == nil {
		return nil
	}
	return r.shape.series
}

// runs is the runs of r's lines (after Finish).
func (r *Lines) runs() []run {
	if r.shape == nil {
		return nil
	}
	return r.shape.runs
}
