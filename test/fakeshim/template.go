package fakeshim

import (
	"bytes"
	_ "embed"
	"strconv"
	"strings"
)

// sharedExposition is the realistic exposition of one shim (75 families, 759
// series) shared by every test; a copy of test/testdata/kata-shim-metrics.prom
// because go:embed cannot reach parent directories.
//
//go:embed testdata/kata-shim-metrics.prom
var sharedExposition []byte

// change says how a sample value moves from one scrape to the next.
type change uint8

const (
	// grow adds n: counters and histogram/summary _bucket, _sum, _count.
	grow change = iota + 1
	// wobble adds n%7: gauges go up and down within a small band.
	wobble
)

// segment is a run of verbatim text followed by one rendered value (unless
// kind is 0, which only happens for the trailing text).
type segment struct {
	text []byte
	base float64
	kind change
}

// template is an exposition split into verbatim text and the values that
// change per scrape, so rendering one scrape is a series of appends.
type template struct {
	segs []segment
	size int // length of the template, a good first guess for a render
}

// compile splits an exposition into segments. It never fails: lines it does
// not understand (comments, garbage, unparsable values, quantiles, untyped
// samples) are kept verbatim.
func compile(src []byte) *template {
	t := &template{size: len(src) + len(src)/8}
	types := make(map[string]string)
	var pending []byte // verbatim text not yet attached to a segment
	rest := src
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		body := bytes.TrimSuffix(line, []byte("\n"))
		if fields := bytes.Fields(body); len(fields) >= 4 && bytes.Equal(fields[0], []byte("#")) && bytes.Equal(fields[1], []byte("TYPE")) {
			types[string(fields[2])] = string(fields[3])
		}
		start, end, kind, base, ok := sampleValue(body, types)
		if !ok {
			pending = append(pending, line...)
			continue
		}
		pending = append(pending, line[:start]...)
		t.segs = append(t.segs, segment{text: pending, base: base, kind: kind})
		pending = append([]byte(nil), line[end:]...)
	}
	t.segs = append(t.segs, segment{text: pending})
	return t
}

// sampleValue locates the value of a sample line and decides how it changes.
// ok is false when the line must stay verbatim.
func sampleValue(line []byte, types map[string]string) (start, end int, kind change, base float64, ok bool) {
	if len(line) == 0 || line[0] == '#' {
		return 0, 0, 0, 0, false
	}
	i := bytes.IndexAny(line, "{ \t")
	if i <= 0 {
		return 0, 0, 0, 0, false
	}
	name := string(line[:i])
	if line[i] == '{' {
		j := labelsEnd(line, i+1)
		if j < 0 {
			return 0, 0, 0, 0, false
		}
		i = j + 1
	}
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	start = i
	for i < len(line) && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	end = i
	if start == end {
		return 0, 0, 0, 0, false
	}
	kind = changeOf(name, types)
	if kind == 0 {
		return 0, 0, 0, 0, false
	}
	v, err := strconv.ParseFloat(string(line[start:end]), 64)
	if err != nil {
		return 0, 0, 0, 0, false
	}
	return start, end, kind, v, true
}

// labelsEnd returns the index of the '}' closing a label set that starts at
// from, honouring quoted values and escapes, or -1.
func labelsEnd(line []byte, from int) int {
	quoted := false
	for i := from; i < len(line); i++ {
		switch c := line[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '}':
			return i
		}
	}
	return -1
}

// changeOf maps a sample name to its change rule through the TYPE lines
// seen so far; 0 means unchanged.
func changeOf(name string, types map[string]string) change {
	switch types[name] {
	case "counter":
		return grow
	case "gauge":
		return wobble
	case "":
	default: // a summary's quantile lines, untyped, ...
		return 0
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		family, found := strings.CutSuffix(name, suffix)
		if !found {
			continue
		}
		switch typ := types[family]; {
		case typ == "histogram", typ == "summary" && suffix != "_bucket":
			return grow
		}
	}
	return 0
}

// render appends the exposition of scrape n to dst.
func (t *template) render(dst []byte, n int64) []byte {
	for _, s := range t.segs {
		dst = append(dst, s.text...)
		switch s.kind {
		case grow:
			dst = strconv.AppendFloat(dst, s.base+float64(n), 'g', -1, 64)
		case wobble:
			dst = strconv.AppendFloat(dst, s.base+float64(n%7), 'g', -1, 64)
		}
	}
	return dst
}

// ExpositionAt returns the exact exposition a Shim started with template
// tmpl serves on its n-th /metrics request (n starts at 1; requests of every
// outcome count). For scrape n, counters and histogram/summary _bucket, _sum
// and _count samples are base+n, gauges base+(n%7); everything else is
// verbatim. A nil tmpl means the shared exposition. It compiles tmpl on every
// call, so tests comparing many rounds should call it once per round.
// Concurrency-safe.
func ExpositionAt(tmpl []byte, n int64) []byte {
	if tmpl == nil {
		tmpl = sharedExposition
	}
	t := compile(tmpl)
	return t.render(make([]byte, 0, t.size), n)
}
