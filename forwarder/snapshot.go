package forwarder

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// snapshot is one finished round as served to pull requests. It is
// immutable once published; readers are counted (under Forwarder.mu) so its
// buffers are recycled only after the last reader is done.
type snapshot struct {
	seq     uint64    // the round's number: unique per snapshot, increasing
	at      time.Time // round start: the time of the data
	done    time.Time // round end: the reference for snapshot_max_age
	ids     []string  // sandboxes of the round, sorted
	status  []SandboxStatus
	out     []*rendered  // per sandbox, aligned with ids
	fams    []*mergedFam // renderable families, sorted by name
	all     []*mergedFam // every family, sorted by name (metadata)
	readers int
	retired bool
	// utf8 is set when a family or label name needs quoting: answers to
	// clients that did not ask for UTF-8 names then escape them (escFams,
	// escaped). escUnderscores is escaped(UnderscoreEscaping), the scheme
	// of clients that say nothing (Prometheus 2), built by merge.
	utf8           bool
	escUnderscores []*mergedFam
	// noPull marks a scheduled round run while pulls were idle: out holds
	// only the families (for metadata), fams is empty; never served.
	noPull bool
}

// mergedFam is one family across all sandboxes: one HELP/TYPE header and
// the line spans of each sandbox in id order.
type mergedFam struct {
	name, help string
	hasHelp    bool
	utf8       bool // a line quotes a name (seriesInfo.utf8)
	typ        model.MetricType
	names      []string
	segs       []seg
	header     []byte
	raw        string // in escaped copies (snapshot.escaped): the unescaped name
}

// seg is lines [lo, hi) of sandbox sb; start is the offset of line lo's
// value in its buf.
type seg struct{ sb, lo, hi, start int }

// merge builds the families of a snapshot from the sandboxes' outputs and
// returns the samples it had to leave out, per sandbox (nil when none).
// It keeps every line it can: a family's TYPE is the first typed one in
// sandbox (id) order, so an untyped exposition of a family never hides the
// typed ones, and its HELP the first one given. A sandbox's lines whose own
// type differs are written under the family's type when the text format
// can carry them (always for counter, gauge and untyped; for a histogram
// or summary when le/quantile are floats and counts not negative); the
// others are counted as type_conflict. Families the text format cannot
// express next to the others (textCompatible) are counted as name_clash.
func (s *snapshot) merge() []dropCounts {
	byName := make(map[string]*mergedFam)
	family := func(fm *famMeta) *mergedFam {
		mf := byName[fm.name]
		if mf == nil {
			mf = &mergedFam{name: fm.name, help: fm.help, hasHelp: fm.hasHelp, typ: fm.typ, utf8: fm.utf8}
			byName[fm.name] = mf
			s.all = append(s.all, mf)
			return mf
		}
		if mf.typ == model.MetricTypeUnknown && fm.typ != model.MetricTypeUnknown {
			mf.typ = fm.typ // typed wins over untyped
		}
		if !mf.hasHelp && fm.hasHelp {
			mf.help, mf.hasHelp = fm.help, true
		}
		mf.utf8 = mf.utf8 || fm.utf8
		return mf
	}
	if s.noPull {
		for _, r := range s.out {
			for i := range r.fams {
				family(&r.fams[i])
			}
		}
		slices.SortFunc(s.all, func(a, b *mergedFam) int { return strings.Compare(a.name, b.name) })
		return nil
	}
	for _, r := range s.out {
		for _, sp := range r.spans {
			family(&r.fams[sp.fam])
		}
	}
	var drops []dropCounts
	drop := func(sb int, why dropReason, n int) {
		if drops == nil {
			drops = make([]dropCounts, len(s.out))
		}
		drops[sb][why] += n
	}
	for sb, r := range s.out {
		for _, sp := range r.spans {
			fm := &r.fams[sp.fam]
			mf := byName[fm.name]
			if fm.typ == mf.typ || !needsCheck(mf.typ) {
				mf.addSeg(sb, sp.lo, sp.hi, sp.start)
			} else if kept := mf.addFitting(sb, r, sp); kept < sp.hi-sp.lo {
				drop(sb, dropTypeConflict, sp.hi-sp.lo-kept)
			}
			for _, n := range r.names[fm.namesLo:fm.namesHi] {
				if !slices.Contains(mf.names, n) {
					mf.names = append(mf.names, n)
				}
			}
		}
	}
	slices.SortFunc(s.all, func(a, b *mergedFam) int { return strings.Compare(a.name, b.name) })
	s.fams = textCompatible(s.all)
	if len(s.fams) < len(s.all) {
		for _, mf := range s.all {
			if _, ok := slices.BinarySearchFunc(s.fams, mf.name, func(a *mergedFam, n string) int { return strings.Compare(a.name, n) }); ok {
				continue
			}
			for _, sg := range mf.segs {
				drop(sg.sb, dropNameClash, sg.hi-sg.lo)
			}
		}
	}
	for _, mf := range s.fams {
		mf.header = familyHeader(mf)
		s.utf8 = s.utf8 || mf.utf8 || !isLegacyMetricName(mf.name)
	}
	if s.utf8 {
		// What a client without UTF-8 names misses, counted per sandbox
		// for the scheme such clients get by default.
		s.escUnderscores = s.escaped(model.UnderscoreEscaping)
		if len(s.escUnderscores) < len(s.fams) {
			kept := make(map[string]bool, len(s.escUnderscores))
			for _, e := range s.escUnderscores {
				kept[e.raw] = true
			}
			for _, mf := range s.fams {
				if !kept[mf.name] {
					for _, sg := range mf.segs {
						drop(sg.sb, dropEscapeClash, sg.hi-sg.lo)
					}
				}
			}
		}
	}
	return drops
}

// familyHeader renders the HELP and TYPE lines of mf.
func familyHeader(mf *mergedFam) []byte {
	h := make([]byte, 0, 32+len(mf.name)*2+len(mf.help))
	if mf.hasHelp && mf.help != "" {
		h = append(h, "# HELP "...)
		h = appendFamilyName(h, mf.name)
		h = append(h, ' ')
		h = appendHelp(h, mf.help)
		h = append(h, '\n')
	}
	h = append(h, "# TYPE "...)
	h = appendFamilyName(h, mf.name)
	h = append(h, ' ')
	h = append(h, typeString(mf.typ)...)
	return append(h, '\n')
}

// escaped returns the families as a client that cannot read UTF-8 names
// gets them: every name escaped with scheme (model.EscapeName), sorted by
// the escaped name, without the families that would then clash with
// another in the text format (two names that escape alike: the first
// keeps it). raw is the family's unescaped name. Allocates; only for
// snapshots with such names.
func (s *snapshot) escaped(scheme model.EscapingScheme) []*mergedFam {
	out := make([]*mergedFam, 0, len(s.fams))
	for _, mf := range s.fams {
		e := *mf
		e.raw = mf.name
		e.name = escapeMetricName(mf.name, scheme)
		e.names = make([]string, len(mf.names))
		for i, n := range mf.names {
			e.names[i] = escapeMetricName(n, scheme)
		}
		e.header = familyHeader(&e)
		out = append(out, &e)
	}
	slices.SortStableFunc(out, func(a, b *mergedFam) int { return strings.Compare(a.name, b.name) })
	return textCompatible(out)
}

// needsCheck reports whether lines rendered under another type must be
// checked one by one before they go under type t.
func needsCheck(t model.MetricType) bool {
	return t == model.MetricTypeHistogram || t == model.MetricTypeSummary
}

// addSeg appends lines [lo, hi) of sandbox sb, merging with the previous
// segment when contiguous.
func (mf *mergedFam) addSeg(sb, lo, hi, start int) {
	if n := len(mf.segs); n > 0 && mf.segs[n-1].sb == sb && mf.segs[n-1].hi == lo {
		mf.segs[n-1].hi = hi
		return
	}
	mf.segs = append(mf.segs, seg{sb: sb, lo: lo, hi: hi, start: start})
}

// addFitting appends the lines of span sp (rendered under another type)
// that the text format accepts under mf's type, and returns how many.
// Rare: only for a family typed differently across sandboxes.
func (mf *mergedFam) addFitting(sb int, r *rendered, sp span) int {
	kept := 0
	off := sp.start
	for i := sp.lo; i < sp.hi; i++ {
		n := bytes.IndexByte(r.buf[off:], '\n') + 1
		val, _, _ := strings.Cut(string(r.buf[off:off+n-1]), " ")
		v, err := strconv.ParseFloat(val, 64)
		if err == nil && renderable(mf.typ, r.infos[i], v) {
			mf.addSeg(sb, i, i+1, off)
			kept++
		}
		off += n
	}
	return kept
}

// write renders the families whose name starts with one of prefixes (all
// when prefixes is empty), with names escaped by scheme when some need
// quoting (model.NoEscaping: the UTF-8 syntax). Each line is its series'
// head, the sandbox's labels, and the value kept in the round.
func (s *snapshot) write(w io.Writer, prefixes []string, scheme model.EscapingScheme) error {
	fams := s.fams
	esc := s.utf8 && scheme != model.NoEscaping
	if esc {
		fams = s.escUnderscores
		if scheme != model.UnderscoreEscaping {
			fams = s.escaped(scheme)
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, mf := range fams {
		if len(prefixes) > 0 && !hasAnyPrefix(mf.name, prefixes) {
			continue
		}
		if _, err := bw.Write(mf.header); err != nil {
			return fmt.Errorf("write metrics: %w", err)
		}
		for _, sg := range mf.segs {
			r := s.out[sg.sb]
			off := sg.start
			for _, in := range r.infos[sg.lo:sg.hi] {
				n := bytes.IndexByte(r.buf[off:], '\n') + 1
				if esc && in.utf8 {
					_, _ = bw.WriteString(escapedHead(in, scheme))
				} else {
					_, _ = bw.WriteString(in.head)
				}
				_, _ = bw.WriteString(r.labels)
				_, _ = bw.WriteString("} ")
				_, _ = bw.Write(r.buf[off : off+n])
				off += n
			}
			// bufio's errors stick: one check per segment sees them all.
			if _, err := bw.Write(nil); err != nil {
				return fmt.Errorf("write metrics: %w", err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

func hasAnyPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// textCompatible leaves out families that the text format cannot express
// next to the others, replaying how expfmt's parser maps HELP/TYPE lines and
// sample names to families: a family whose header would land on a family
// already seen (e.g. "x_count" after histogram "x"), or whose samples would
// land in another histogram or summary. This only happens with odd
// expositions, but a pull response must always parse.
func textCompatible(all []*mergedFam) []*mergedFam {
	type simFam struct{ typ model.MetricType }
	seen := make(map[string]*simFam, len(all)*2)
	resolve := func(name string) *simFam {
		if f := seen[name]; f != nil {
			return f
		}
		for _, suf := range []string{"_count", "_sum", "_bucket"} {
			if !hasSuffix(name, suf) {
				continue
			}
			f := seen[name[:len(name)-len(suf)]]
			if f == nil {
				continue
			}
			if f.typ == model.MetricTypeHistogram || (f.typ == model.MetricTypeSummary && suf != "_bucket") {
				return f
			}
		}
		return nil
	}
	out := make([]*mergedFam, 0, len(all))
	var added []string
	for _, mf := range all {
		if len(mf.segs) == 0 || resolve(mf.name) != nil {
			continue
		}
		own := &simFam{typ: mf.typ}
		seen[mf.name] = own
		added = append(added[:0], mf.name)
		ok := true
		for _, n := range mf.names {
			switch f := resolve(n); {
			case f == own:
			case f == nil: // expfmt opens an implicit untyped family
				seen[n] = &simFam{typ: model.MetricTypeUnknown}
				added = append(added, n)
			case f.typ == model.MetricTypeHistogram || f.typ == model.MetricTypeSummary:
				ok = false
			}
		}
		if !ok {
			for _, n := range added {
				delete(seen, n)
			}
			continue
		}
		out = append(out, mf)
	}
	return out
}
