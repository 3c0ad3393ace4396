package exposition

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
)

// Snapshot is the pull side of one finished round: every sandbox's Lines,
// merged into families. Build it with Out (and NoPull) set, call Merge
// once, then it is immutable: Write and Families may be called
// concurrently.
type Snapshot struct {
	// Out is the sandboxes' lines, in sandbox id order.
	Out []*Lines
	// NoPull marks a round run while pulls were idle: Out holds only the
	// families (for metadata, Lines.Meta); Write writes nothing.
	NoPull bool

	fams []*Family // renderable families, sorted by name
	all  []*Family // every family, sorted by name (metadata)
	// utf8 is set when a family or label name needs quoting: answers to
	// clients that did not ask for UTF-8 names then escape them (escaped).
	// escUnderscores is escaped(UnderscoreEscaping), the scheme of clients
	// that say nothing (Prometheus 2), built by Merge.
	utf8           bool
	escUnderscores []*Family
}

// Family is one family across all sandboxes: one HELP/TYPE header and
// the line runs of each sandbox in id order. The FamilyMeta is read-only.
type Family struct {
	FamilyMeta
	names  []string // distinct sample names
	runs   []sbRun
	header []byte
	raw    string // in escaped copies (Snapshot.escaped): the unescaped name
}

// sbRun is lines [lo, hi) of sandbox sb; start is the offset of line lo's
// value in its buf (16 bytes: a snapshot holds one per family and sandbox).
type sbRun struct{ sb, lo, hi, start int32 }

// Families returns every family of the round (renderable or not), sorted
// by name: the metadata of the round. Not to be modified.
func (s *Snapshot) Families() []*Family { return s.all }

// UTF8 reports whether a family or label name of the round needs quoting,
// so that Write's output depends on the escaping scheme.
func (s *Snapshot) UTF8() bool { return s.utf8 }

// Merge builds the families from Out and returns the samples it had to
// leave out, per sandbox aligned with Out (nil when none). It keeps every
// line it can: a family's TYPE is the first typed one in sandbox (id)
// order, so an untyped exposition of a family never hides the typed ones,
// and its HELP the first one given. A sandbox's lines whose own type
// differs are written under the family's type when the text format can
// carry them (always for counter, gauge and untyped; for a histogram or
// summary when le/quantile are floats and counts not negative); the others
// are counted as type_conflict. Families the text format cannot express
// next to the others (textCompatible) are counted as name_clash, and those
// an escaping client cannot tell apart as escape_clash.
func (s *Snapshot) Merge() []DropCounts {
	m := merger{s: s, byName: make(map[string]*Family)}
	for _, r := range s.Out {
		r.Finish(nil, nil) // Lines filled without Finish get their own shape
	}
	if s.NoPull {
		for _, r := range s.Out {
			for i := range r.fams {
				m.family(&r.fams[i].FamilyMeta)
			}
		}
		s.sortAll()
		return nil
	}
	for _, r := range s.Out {
		for _, rn := range r.runs() {
			m.family(&r.fams[rn.fam].FamilyMeta)
		}
	}
	m.place()
	s.sortAll()
	s.fams = textCompatible(s.all)
	m.dropClashes()
	for _, mf := range s.fams {
		mf.header = familyHeader(mf)
		s.utf8 = s.utf8 || mf.UTF8 || !isLegacyMetricName(mf.Name)
	}
	if s.utf8 {
		m.escape()
	}
	return m.drops
}

func (s *Snapshot) sortAll() {
	slices.SortFunc(s.all, func(a, b *Family) int { return strings.Compare(a.Name, b.Name) })
}

// merger is the state of one Merge.
type merger struct {
	s      *Snapshot
	byName map[string]*Family
	drops  []DropCounts
}

// family returns the family named fm.Name, creating it, and merges fm's
// HELP/TYPE into it: typed wins over untyped, the first HELP wins.
func (m *merger) family(fm *FamilyMeta) *Family {
	mf := m.byName[fm.Name]
	if mf == nil {
		mf = &Family{FamilyMeta: *fm}
		m.byName[fm.Name] = mf
		m.s.all = append(m.s.all, mf)
		return mf
	}
	if mf.Type == model.MetricTypeUnknown && fm.Type != model.MetricTypeUnknown {
		mf.Type = fm.Type
	}
	if !mf.HasHelp && fm.HasHelp {
		mf.Help, mf.HasHelp = fm.Help, true
	}
	mf.UTF8 = mf.UTF8 || fm.UTF8
	return mf
}

func (m *merger) drop(sb int, why DropReason, n int) {
	if m.drops == nil {
		m.drops = make([]DropCounts, len(m.s.Out))
	}
	m.drops[sb][why] += n
}

// place adds every sandbox's runs to their families, line by line where
// the sandbox typed the family otherwise (type_conflict).
func (m *merger) place() {
	for sb, r := range m.s.Out {
		for i, rn := range r.runs() {
			fm := &r.fams[rn.fam]
			mf := m.byName[fm.Name]
			if fm.Type == mf.Type || !needsCheck(mf.Type) {
				mf.addRun(int32(sb), rn.lo, rn.hi, r.starts[i])
			} else if kept := mf.addFitting(int32(sb), r, rn, r.starts[i]); kept < int(rn.hi-rn.lo) {
				m.drop(sb, DropTypeConflict, int(rn.hi-rn.lo)-kept)
			}
			for _, n := range r.names[fm.namesLo:fm.namesHi] {
				if !slices.Contains(mf.names, n) {
					mf.names = append(mf.names, n)
				}
			}
		}
	}
}

// dropClashes counts the lines of the families textCompatible left out.
func (m *merger) dropClashes() {
	s := m.s
	if len(s.fams) == len(s.all) {
		return
	}
	for _, mf := range s.all {
		if _, ok := slices.BinarySearchFunc(s.fams, mf.Name, func(a *Family, n string) int { return strings.Compare(a.Name, n) }); ok {
			continue
		}
		for _, rn := range mf.runs {
			m.drop(int(rn.sb), DropNameClash, int(rn.hi-rn.lo))
		}
	}
}

// escape builds the escaped families of clients that say nothing about
// UTF-8 names and counts, per sandbox, what such clients miss.
func (m *merger) escape() {
	s := m.s
	s.escUnderscores = s.escaped(model.UnderscoreEscaping)
	if len(s.escUnderscores) == len(s.fams) {
		return
	}
	kept := make(map[string]bool, len(s.escUnderscores))
	for _, e := range s.escUnderscores {
		kept[e.raw] = true
	}
	for _, mf := range s.fams {
		if !kept[mf.Name] {
			for _, rn := range mf.runs {
				m.drop(int(rn.sb), DropEscapeClash, int(rn.hi-rn.lo))
			}
		}
	}
}

// familyHeader renders the HELP and TYPE lines of mf.
func familyHeader(mf *Family) []byte {
	h := make([]byte, 0, 32+len(mf.Name)*2+len(mf.Help))
	if mf.HasHelp && mf.Help != "" {
		h = append(h, "# HELP "...)
		h = appendFamilyName(h, mf.Name)
		h = append(h, ' ')
		h = appendHelp(h, mf.Help)
		h = append(h, '\n')
	}
	h = append(h, "# TYPE "...)
	h = appendFamilyName(h, mf.Name)
	h = append(h, ' ')
	h = append(h, typeString(mf.Type)...)
	return append(h, '\n')
}

// escaped returns the families as a client that cannot read UTF-8 names
// gets them: every name escaped with scheme (model.EscapeName), sorted by
// the escaped name, without the families that would then clash with
// another in the text format (two names that escape alike: the first
// keeps it). raw is the family's unescaped name. Allocates; only for
// snapshots with such names.
func (s *Snapshot) escaped(scheme model.EscapingScheme) []*Family {
	out := make([]*Family, 0, len(s.fams))
	for _, mf := range s.fams {
		e := *mf
		e.raw = mf.Name
		e.Name = escapeMetricName(mf.Name, scheme)
		e.names = make([]string, len(mf.names))
		for i, n := range mf.names {
			e.names[i] = escapeMetricName(n, scheme)
		}
		e.header = familyHeader(&e)
		out = append(out, &e)
	}
	slices.SortStableFunc(out, func(a, b *Family) int { return strings.Compare(a.Name, b.Name) })
	return textCompatible(out)
}

// needsCheck reports whether lines rendered under another type must be
// checked one by one before they go under type t.
func needsCheck(t model.MetricType) bool {
	return t == model.MetricTypeHistogram || t == model.MetricTypeSummary
}

// addRun appends lines [lo, hi) of sandbox sb, merging with the previous
// run when contiguous.
func (mf *Family) addRun(sb, lo, hi, start int32) {
	if n := len(mf.runs); n > 0 && mf.runs[n-1].sb == sb && mf.runs[n-1].hi == lo {
		mf.runs[n-1].hi = hi
		return
	}
	mf.runs = append(mf.runs, sbRun{sb: sb, lo: lo, hi: hi, start: start})
}

// addFitting appends the lines of run rn (rendered under another type),
// whose values start at offset start of r's buf, that the text format
// accepts under mf's type, and returns how many. Rare: only for a family
// typed differently across sandboxes.
func (mf *Family) addFitting(sb int32, r *Lines, rn run, start int32) int {
	kept := 0
	off := start
	series := r.series()
	for i := rn.lo; i < rn.hi; i++ {
		n := int32(bytes.IndexByte(r.buf[off:], '\n') + 1)
		val, _, _ := strings.Cut(string(r.buf[off:off+n-1]), " ")
		v, err := strconv.ParseFloat(val, 64)
		if err == nil && Renderable(mf.Type, series[i], v) {
			mf.addRun(sb, i, i+1, off)
			kept++
		}
		off += n
	}
	return kept
}

// Write renders the families whose name starts with one of prefixes (all
// when prefixes is empty), with names escaped by scheme when some need
// quoting (model.NoEscaping: the UTF-8 syntax). Each line is its series'
// head, the sandbox's labels, and the value kept in the round.
func (s *Snapshot) Write(w io.Writer, prefixes []string, scheme model.EscapingScheme) error {
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
		if len(prefixes) > 0 && !hasAnyPrefix(mf.Name, prefixes) {
			continue
		}
		if _, err := bw.Write(mf.header); err != nil {
			return fmt.Errorf("write metrics: %w", err)
		}
		for _, rn := range mf.runs {
			r := s.Out[rn.sb]
			off := int(rn.start)
			for _, in := range r.series()[rn.lo:rn.hi] {
				n := bytes.IndexByte(r.buf[off:], '\n') + 1
				if esc && in.UTF8 {
					_, _ = bw.WriteString(escapedHead(in, scheme))
				} else {
					_, _ = bw.WriteString(in.head)
				}
				_, _ = bw.WriteString(r.Labels)
				_, _ = bw.WriteString("} ")
				_, _ = bw.Write(r.buf[off : off+n])
				off += n
			}
			// bufio's errors stick: one check per run sees them all.
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
func textCompatible(all []*Family) []*Family {
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
	out := make([]*Family, 0, len(all))
	var added []string
	for _, mf := range all {
		if len(mf.runs) == 0 || resolve(mf.Name) != nil {
			continue
		}
		own := &simFam{typ: mf.Type}
		seen[mf.Name] = own
		added = append(added[:0], mf.Name)
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
