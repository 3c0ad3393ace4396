package exposition

import (
	"strconv"

	"github.com/prometheus/common/model"
)

// Lines is one sandbox's pull exposition of one round: lines grouped in
// runs by family. A line is kept as its series' shared Series (the head)
// and its value: the sandbox's labels are written between the two when the
// exposition is served, so a round holds ~20 bytes per line instead of the
// ~190 of a rendered line. Filled by one goroutine (the sandbox's scrape),
// then owned by a Snapshot and read-only.
type Lines struct {
	// Meta marks families only (no lines): pulls are idle, the round only
	// needs the families' metadata.
	Meta bool
	// Labels is the sandbox's labels, rendered (SandboxLabels).
	Labels string
	series []*Series
	buf    []byte // per line: value [timestamp] newline
	*Families
	runs []run
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

// run is lines [lo, hi) of family fam; start is the offset of line lo's
// value in buf.
type run struct{ fam, lo, hi, start int }

// LinesSize is the lengths of a Lines' slices, to size the next one.
type LinesSize struct{ lines, buf, runs int }

// NewLines returns empty Lines with room for what size describes (plus a
// sixteenth), so appending does not grow it by doubling (which would leave
// up to half of it unused for the snapshot's lifetime).
func NewLines(size LinesSize) *Lines {
	return &Lines{
		series:   make([]*Series, 0, size.lines+size.lines/16),
		buf:      make([]byte, 0, size.buf+size.buf/16),
		runs:     make([]run, 0, size.runs),
		Families: &Families{},
	}
}

// NewMeta returns Lines that keep families only (Meta).
func NewMeta() *Lines {
	return &Lines{Meta: true, Families: &Families{}}
}

// Reset empties r for reuse, keeping its capacity (the families are
// shared: they are let go).
func (r *Lines) Reset() {
	clear(r.series)
	r.series, r.buf, r.runs = r.series[:0], r.buf[:0], r.runs[:0]
	r.Families = &Families{}
}

// Size returns the lengths of r's slices.
func (r *Lines) Size() LinesSize {
	return LinesSize{lines: len(r.series), buf: len(r.buf), runs: len(r.runs)}
}

// Append adds the line of series s with value v (and its own timestamp
// when tsp is not nil) to family fam, the index the family will have in
// the AddFamily calls of this round.
func (r *Lines) Append(fam int, s *Series, v float64, tsp *int64) {
	start, line := len(r.buf), len(r.series)
	r.series = append(r.series, s)
	r.buf = appendValue(r.buf, v)
	if tsp != nil {
		r.buf = append(r.buf, ' ')
		r.buf = strconv.AppendInt(r.buf, *tsp, 10)
	}
	r.buf = append(r.buf, '\n')
	if n := len(r.runs); n > 0 && r.runs[n-1].fam == fam && r.runs[n-1].hi == line {
		r.runs[n-1].hi++
	} else {
		r.runs = append(r.runs, run{fam: fam, lo: line, hi: line + 1, start: start})
	}
}

// SetFamilies gives r the round's families (shared, read-only: see
// FamilyTable), whose indexes the fam arguments of Append are.
func (r *Lines) SetFamilies(f *Families) { r.Families = f }

// Len is the number of lines.
func (r *Lines) Len() int { return len(r.series) }
