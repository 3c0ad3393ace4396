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
	fams   []famMeta
	names  []string
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

// run is lines [lo, hi) of family fam; start is the offset of line lo's
// value in buf.
type run struct{ fam, lo, hi, start int }

// LinesSize is the lengths of a Lines' slices, to size the next one.
type LinesSize struct{ lines, buf, fams, names, runs int }

// NewLines returns empty Lines with room for what size describes (plus a
// sixteenth), so appending does not grow it by doubling (which would leave
// up to half of it unused for the snapshot's lifetime).
func NewLines(size LinesSize) *Lines {
	return &Lines{
		series: make([]*Series, 0, size.lines+size.lines/16),
		buf:    make([]byte, 0, size.buf+size.buf/16),
		fams:   make([]famMeta, 0, size.fams),
		names:  make([]string, 0, size.names),
		runs:   make([]run, 0, size.runs),
	}
}

// NewMeta returns Lines that keep families only (Meta), with room for
// fams of them.
func NewMeta(fams int) *Lines {
	return &Lines{Meta: true, fams: make([]famMeta, 0, fams)}
}

// Reset empties r for reuse, keeping its capacity.
func (r *Lines) Reset() {
	clear(r.series)
	r.series, r.buf, r.fams, r.names, r.runs = r.series[:0], r.buf[:0], r.fams[:0], r.names[:0], r.runs[:0]
}

// Size returns the lengths of r's slices.
func (r *Lines) Size() LinesSize {
	return LinesSize{lines: len(r.series), buf: len(r.buf), fams: len(r.fams), names: len(r.names), runs: len(r.runs)}
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

// AddFamily adds the next family of the round (in the order of the fam
// indexes given to Append) with its distinct sample names (not kept in
// Meta lines: only the merge of rendered lines needs them).
func (r *Lines) AddFamily(m FamilyMeta, names []string) {
	lo := len(r.names)
	if !r.Meta {
		r.names = append(r.names, names...)
	}
	r.fams = append(r.fams, famMeta{FamilyMeta: m, namesLo: lo, namesHi: len(r.names)})
}

// Fams is the number of families.
func (z LinesSize) Fams() int { return z.fams }

// WithFams returns z with n families (the size of Meta lines, whose other
// sizes are zero).
func (z LinesSize) WithFams(n int) LinesSize {
	z.fams = n
	return z
}

// Len is the number of lines.
func (r *Lines) Len() int { return len(r.series) }
