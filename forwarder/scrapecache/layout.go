package scrapecache

import (
	"math"
	"strconv"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/value"
)

// The replay path. Almost every line a shim serves is, byte for byte up to
// its value, the line it served in the last round. After a parse by the
// full parser (textparse) that met no error, the exposition's layout is
// kept: every byte but the sample values and timestamps, cut into the
// steps the parser took (a HELP line, a TYPE line, a series up to its
// value). The next round first matches the new exposition against that
// layout with a byte comparison and, where a value stands, reads only the
// value (and timestamp); if every byte matches, the steps are replayed
// with the new values and the lexer never runs.
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
// counted exactly as before. FuzzReplay checks the two paths agree.
//
// Layouts are interned in the Env: sandboxes serving the same structure
// share one (~60 KiB for the shared exposition); a sandbox keeps the
// index of its entry per series step (4 bytes per series).

// stepKind is what a step of a layout does.
type stepKind uint8

const (
	stepHelp stepKind = iota
	stepType
	stepSeries
)

// step is one parser step of a layout: text[previous step's end:end] is
// its fixed bytes (the whole line for HELP and TYPE, with the comments and
// blank lines before it; up to the value and the one space before it for
// a series).
type step struct {
	end  int32
	raw  int32 // stepSeries: where the series text (the parser's raw) starts
	kind stepKind
	typ  model.MetricType // stepType
	name string           // stepHelp, stepType: the family name as the parser gave it
	help string           // stepHelp
}

// layout is an exposition's bytes but its values, and its steps. Shared
// by the sandboxes serving it; immutable.
type layout struct {
	text  string
	steps []step
}

func (l *layout) equal(steps []step) bool {
	if len(l.steps) != len(steps) {
		return false
	}
	for i := range steps {
		if l.steps[i] != steps[i] {
			return false
		}
	}
	return true
}

// maxLayouts bounds the Env's table: past it the table is emptied (the
// sandboxes keep theirs), so churn cannot grow it.
const maxLayouts = 64

// layouts is the Env's table of shared layouts, keyed by text.
type layouts struct {
	mu sync.Mutex
	m  map[string][]*layout
	// scratch holds a replay's values until the whole exposition matched:
	// one per concurrent parse.
	scratch sync.Pool
}

// intern returns the shared layout of text and steps, adding it if new.
func (t *layouts) intern(text []byte, steps []step) *layout {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.m[string(text)] {
		if l.equal(steps) {
			return l
		}
	}
	if t.m == nil || len(t.m) >= maxLayouts {
		t.m = make(map[string][]*layout)
	}
	l := &layout{text: string(text), steps: steps}
	t.m[l.text] = append(t.m[l.text], l)
	return l
}

// replayVals is a replay's values, in series step order; ts < 0: none.
type replayVals struct {
	v  []float64
	ts []int64
}

// recorder builds the layout of an exposition during a full parse. ok is
// cleared at the first step it cannot record; the parse then keeps none.
type recorder struct {
	body  []byte
	prev  int // end (in body) of the last step's bytes, values included
	text  []byte
	steps []step
	idx   []int32
	ok    bool
}

func (r *recorder) start(body []byte, idx []int32) {
	r.body, r.prev, r.text, r.steps, r.idx = body, 0, r.text[:0], nil, idx[:0]
	// The parser works on body itself only when it ends with a newline
	// (else it appends one): offsets of its slices are then offsets in body.
	r.ok = len(body) == 0 || body[len(body)-1] == '\n'
}

// offset returns where sub, a slice the parser returned, starts in body.
func (r *recorder) offset(sub []byte) int { return cap(r.body) - cap(sub) }

// meta records a HELP or TYPE line whose family name the parser returned
// as name: the step ends after the line's newline.
func (r *recorder) meta(s step, name []byte) {
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

// series records a series whose text the parser returned as raw, with its
// entry; the step ends after the space before the value.
func (r *recorder) series(raw []byte, idx int32) {
	if !r.ok {
		return
	}
	start := r.offset(raw)
	end := start + len(raw)
	if end >= len(r.body) || r.body[end] != ' ' {
		r.ok = false
		return
	}
	r.add(step{kind: stepSeries, raw: int32(len(r.text) + start - r.prev)}, end+1)
	_, _, next, ok := readValue(r.body, end+1)
	if !ok {
		r.ok = false
		return
	}
	r.idx = append(r.idx, idx)
	r.prev = next
}

func (r *recorder) add(s step, end int) {
	r.text = append(r.text, r.body[r.prev:end]...)
	s.end = int32(len(r.text))
	r.steps = append(r.steps, s)
}

// finish returns the recorded text (the tail included) and steps, or
// false.
func (r *recorder) finish() ([]byte, []step, bool) {
	if !r.ok {
		return nil, nil, false
	}
	r.text = append(r.text, r.body[r.prev:]...)
	return r.text, r.steps, true
}

func indexNL(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] == '\n' {
			return i
		}
	}
	return -1
}

// readValue reads `value\n` or `value timestamp\n` at body[i:] in the
// shapes the replay accepts, as textparse reads them. It returns the
// value, the timestamp (-1: none), the offset after the newline, and false
// for anything else.
func readValue(body []byte, i int) (float64, int64, int, bool) {
	j := i
	for j < len(body) && valueByte(body[j]) {
		j++
	}
	if j == i || j == len(body) {
		return 0, 0, 0, false
	}
	v, ok := readUint(body[i:j])
	if !ok {
		var err error
		if v, err = strconv.ParseFloat(string(body[i:j]), 64); err != nil {
			return 0, 0, 0, false
		}
		if math.IsNaN(v) {
			v = math.Float64frombits(value.NormalNaN)
		}
	}
	switch body[j] {
	case '\n':
		return v, -1, j + 1, true
	case ' ':
	default:
		return 0, 0, 0, false
	}
	k := j + 1
	for k < len(body) && body[k] >= '0' && body[k] <= '9' {
		k++
	}
	if k == j+1 || k == len(body) || body[k] != '\n' {
		return 0, 0, 0, false
	}
	ts, err := strconv.ParseInt(string(body[j+1:k]), 10, 64)
	if err != nil {
		return 0, 0, 0, false
	}
	return v, ts, k + 1, true
}

// readUint reads b when it is 1 to 15 decimal digits, the shape of most
// values a shim serves (counters, sizes, counts): a float64 holds every
// such integer exactly, so the result is strconv.ParseFloat's, for a
// tenth of its cost. ok is false for any other shape.
func readUint(b []byte) (v float64, ok bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	return float64(u), true
}

// valueByte reports whether c may be part of a value the replay reads: a
// byte of textparse's value token ([^{ \t\n]) that strconv.ParseFloat may
// accept and textparse does not refuse ('p', 'P', '_').
func valueByte(c byte) bool {
	switch {
	case c >= '0' && c <= '9', c == '.', c == '+', c == '-':
		return true
	case c == 'p' || c == 'P':
		return false
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	}
	return false
}

// match reads body against l: every fixed byte must be equal and every
// value readable. It fills vals (one per series step) and reports
// whether body matched; nothing else changes.
func (l *layout) match(body []byte, vals *replayVals) bool {
	vals.v, vals.ts = vals.v[:0], vals.ts[:0]
	pos, tpos := 0, 0
	for i := range l.steps {
		st := &l.steps[i]
		lead := l.text[tpos:st.end]
		if len(body)-pos < len(lead) || string(body[pos:pos+len(lead)]) != lead {
			return false
		}
		pos += len(lead)
		tpos = int(st.end)
		if st.kind != stepSeries {
			continue
		}
		v, ts, next, ok := readValue(body, pos)
		if !ok {
			return false
		}
		vals.v = append(vals.v, v)
		vals.ts = append(vals.ts, ts)
		pos = next
	}
	return string(body[pos:]) == l.text[tpos:]
}
