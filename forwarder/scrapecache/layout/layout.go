// Package layout is the scrape cache's replay path: an exposition's bytes
// but its sample values and timestamps, cut into the steps the full parser
// (textparse) took, so that the next round can be matched against it with
// a byte comparison and only its values read.
//
// Almost every line a shim serves is, byte for byte up to its value, the
// line it served in the last round. After a parse by the full parser that
// met no error, the exposition's layout is kept (a Recorder builds it
// during that parse): every byte but the sample values and timestamps, cut
// into steps (a HELP line, a TYPE line, a series up to its value). The
// next round first matches the new exposition against that layout
// (Layout.Match) and, where a value stands, reads only the value (and
// timestamp); if every byte matches, the caller replays the steps with the
// new values and the lexer never runs.
//
// Why this gives what the full parser would: the text format's lexer is
// in its initial state at the start of each line and after a step, so
// identical bytes lex into identical tokens; a value is accepted here only
// in a shape that lexes as one value token in both (letters, digits, '.',
// '+', '-', without 'p', 'P' or '_', which textparse refuses), followed by
// a newline or one space, digits and a newline (the timestamp), and it is
// read with the same rules (strconv.ParseFloat, a NaN made the canonical
// one). Anything else (a changed byte, a tab, trailing blanks, an
// out-of-range number, another Content-Type) makes the whole round take
// the full parser, before any state changed: invalid input is caught and
// counted exactly as before. scrapecache's FuzzReplay checks the two paths
// agree.
//
// Layouts are interned in a Table: sandboxes serving the same structure
// share one (~60 KiB for the shared exposition); a sandbox keeps the index
// of its entry per series step (4 bytes per series).
//
// It imports no kata-monitor package; forwarder/scrapecache drives it.
package layout

import (
	"sync"

	"github.com/prometheus/common/model"
)

// StepKind is what a step of a layout does.
type StepKind uint8

// The steps of a layout.
const (
	StepHelp StepKind = iota
	StepType
	StepSeries
)

// Step is one parser step of a layout: Text[previous step's End:End] is
// its fixed bytes (the whole line for HELP and TYPE, with the comments and
// blank lines before it; up to the value and the one space before it for
// a series).
type Step struct {
	End  int32
	Raw  int32 // StepSeries: where the series text (the parser's raw) starts
	Kind StepKind
	Typ  model.MetricType // StepType
	Name string           // StepHelp, StepType: the family name as the parser gave it
	Help string           // StepHelp
}

// Layout is an exposition's bytes but its values, and its steps. Shared
// by the sandboxes serving it: read only.
type Layout struct {
	Text  string
	Steps []Step
}

// Series calls fn with the series text of each series step, in order
// (substrings of l.Text: nothing is copied).
func (l *Layout) Series(fn func(raw string)) {
	for i := range l.Steps {
		if st := &l.Steps[i]; st.Kind == StepSeries {
			fn(l.Text[st.Raw : st.End-1])
		}
	}
}

func (l *Layout) equal(steps []Step) bool {
	if len(l.Steps) != len(steps) {
		return false
	}
	for i := range steps {
		if l.Steps[i] != steps[i] {
			return false
		}
	}
	return true
}

// maxLayouts bounds a Table: past it the table is emptied (the sandboxes
// keep theirs), so churn cannot grow it.
const maxLayouts = 64

// Table is the shared layouts, keyed by text, and the scratch values of
// the replays in progress. The zero value is ready; safe for concurrent
// use.
type Table struct {
	mu sync.Mutex
	m  map[string][]*Layout
	// scratch holds a replay's values until the whole exposition matched:
	// one per concurrent parse.
	scratch sync.Pool
}

// Intern returns the shared layout of text and steps, adding it if new.
func (t *Table) Intern(text []byte, steps []Step) *Layout {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.m[string(text)] {
		if l.equal(steps) {
			return l
		}
	}
	if t.m == nil || len(t.m) >= maxLayouts {
		t.m = make(map[string][]*Layout)
	}
	l := &Layout{Text: string(text), Steps: steps}
	t.m[l.Text] = append(t.m[l.Text], l)
	return l
}

// GetVals returns scratch values for one replay; PutVals gives them back.
func (t *Table) GetVals() *Vals {
	if v, _ := t.scratch.Get().(*Vals); v != nil {
		return v
	}
	return &Vals{}
}

// PutVals gives back values from GetVals.
func (t *Table) PutVals(v *Vals) { t.scratch.Put(v) }

// Vals is a replay's values, in series step order; TS[k] < 0: none.
type Vals struct {
	V  []float64
	TS []int64
}

// Recorder builds the layout of an exposition during a full parse. It
// fails at the first step it cannot record; the parse then keeps none.
type Recorder struct {
	body  []byte
	prev  int // end (in body) of the last step's bytes, values included
	text  []byte
	steps []Step
	idx   []int32
	ok    bool
}

// Start begins recording body, reusing idx's array for the entries of
// the series steps.
func (r *Recorder) Start(body []byte, idx []int32) {
	r.body, r.prev, r.text, r.steps, r.idx = body, 0, r.text[:0], nil, idx[:0]
	// The parser works on body itself only when it ends with a newline
	// (else it appends one): offsets of its slices are then offsets in body.
	r.ok = len(body) == 0 || body[len(body)-1] == '\n'
}

// OK reports whether the recording is still going (Start called, no step
// failed).
func (r *Recorder) OK() bool { return r.ok }

// Fail abandons the recording (a step the layout cannot hold).
func (r *Recorder) Fail() { r.ok = false }

// offset returns where sub, a slice the parser returned, starts in body.
func (r *Recorder) offset(sub []byte) int { return cap(r.body) - cap(sub) }

// Meta records a HELP or TYPE line whose family name the parser returned
// as name: the step ends after the line's newline.
func (r *Recorder) Meta(s Step, name []byte) {
	if !r.ok {
		return
	}
	end := r.offset(name) + len(name)
	nl := indexNL(r.body, end)
	if nl < 0 {
		r.ok = false
		return
	}
	r.add(s, nl+1)
	r.prev = nl + 1
}

// Series records a series whose text the parser returned as raw, with its
// entry idx; the step ends after the space before the value.
func (r *Recorder) Series(raw []byte, idx int32) {
	if !r.ok {
		return
	}
	start := r.offset(raw)
	end := start + len(raw)
	if end >= len(r.body) || r.body[end] != ' ' {
		r.ok = false
		return
	}
	r.add(Step{Kind: StepSeries, Raw: int32(len(r.text) + start - r.prev)}, end+1)
	_, _, next, ok := readValue(r.body, end+1)
	if !ok {
		r.ok = false
		return
	}
	r.idx = append(r.idx, idx)
	r.prev = next
}

func (r *Recorder) add(s Step, end int) {
	r.text = append(r.text, r.body[r.prev:end]...)
	s.End = int32(len(r.text))
	r.steps = append(r.steps, s)
}

// Finish returns the recorded text (the tail included), steps and the
// entries of the series steps, or false.
func (r *Recorder) Finish() ([]byte, []Step, []int32, bool) {
	if !r.ok {
		return nil, nil, nil, false
	}
	r.text = append(r.text, r.body[r.prev:]...)
	return r.text, r.steps, r.idx, true
}
