package layout

import (
	"math"
	"strconv"

	"github.com/prometheus/prometheus/model/value"
)

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

// Match reads body against l: every fixed byte must be equal and every
// value readable. It fills vals (one per series step) and reports
// whether body matched; nothing else changes.
func (l *Layout) Match(body []byte, vals *Vals) bool {
	vals.V, vals.TS = vals.V[:0], vals.TS[:0]
	pos, tpos := 0, 0
	for i := range l.Steps {
		st := &l.Steps[i]
		lead := l.Text[tpos:st.End]
		if len(body)-pos < len(lead) || string(body[pos:pos+len(lead)]) != lead {
			return false
		}
		pos += len(lead)
		tpos = int(st.End)
		if st.Kind != StepSeries {
			continue
		}
		v, ts, next, ok := readValue(body, pos)
		if !ok {
			return false
		}
		vals.V = append(vals.V, v)
		vals.TS = append(vals.TS, ts)
		pos = next
	}
	return string(body[pos:]) == l.Text[tpos:]
}
