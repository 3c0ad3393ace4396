package scrapecache

import (
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache/layout"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/sources/cri"
)

// Sandbox is the scrape cache of one sandbox: its series across rounds,
// keyed by their raw text in the exposition, with the families seen and
// this round's push samples. One goroutine at a time uses it (the
// sandbox's scrape during a round, the round's sequential phase between
// them); methods are not safe for concurrent use.
type Sandbox struct {
	id       string
	pod      cri.Pod
	podKnown bool
	vals     *Values // id and pod label values, replaced when the pod changes
	labels   string  // the pull rendering of vals (exposition.SandboxLabels)

	entries []Entry // the sandbox's series; free slots have no Info
	free    []int32 // free slots of entries
	// byRaw maps a series' raw text to its entry, byInfo its Series.Canon
	// (the canonical series). Only the full parser needs them: both are
	// nil while the sandbox has a layout (the replay path's steps know
	// every entry) and are rebuilt from it before the next full parse
	// (ensureMaps), which at 200 sandboxes saves ~12 MiB of map space that
	// steady-state rounds never read.
	byRaw   map[string]int32
	byInfo  map[string]int32
	spells  int    // raw spellings cached: len(byRaw) when built
	scratch []byte // for rendering a new entry's head
	live    int    // distinct valid entries seen this round
	seen    int    // distinct entries (valid or not) seen this round
	evicted []Gone // pushable series that disappeared, for the push phase
	lb      *labels.Builder

	// During a Parse (Env.getDefs): the families of the round, in order of
	// appearance, and the index in defs of each by name as exposed.
	defs   []famDef
	defIdx map[string]int
	// fams is the shared family set the last round's lines got (Env.fams),
	// shape their shared series and runs (Env.shapes; nil: none yet).
	fams  *exposition.Families
	shape *exposition.Shape

	samples []Sample // this round's push samples (collect only), nil once pushed
	tss     []int64  // timestamps given by the exposition, this round
	// nSamples is how many push samples the last pushed round had: the
	// next collect round's samples are allocated at that size.
	nSamples int

	// layout is the last exposition but its values, for the replay path
	// (package layout), nil when the last parse could not record one; idx is
	// the entry of each of its series steps, nil when step k's entry is k
	// (entryAt; 4 bytes a series saved in the common case).
	layout   *layout.Layout
	idx      []int32
	replayed bool // the last Parse took the replay path
}

// Gone is a series that disappeared, with what its staleness marker needs.
type Gone struct {
	Tmpl *Template
	Vals *Values
	Hash uint64
	Sent uint32 // the last push round that sent it (truncated)
}

// Sample is one sample of a round, for the push phase: 16 bytes.
type Sample struct {
	Value float64
	Entry int32 // index of its entry (Sandbox.Entry)
	TS    int32 // index of its own timestamp (Sandbox.Timestamp), or -1: the round's
}

// famDef is one family of one exposition in one round: its names are
// fam's (72 bytes a family, the sandbox keeps one per family).
type famDef struct {
	fam              *family
	help             string
	typ              model.MetricType
	names            []string // distinct rendered sample names (for the expfmt check)
	hasHelp, hasType bool
	locked           bool // a sample was assigned: later HELP/TYPE lines are ignored
	utf8             bool // a line's name or label name needs quoting
}

// family is one family name as exposed and after renaming, shared by all
// sandboxes (Env.family), so a round neither re-renames nor re-allocates
// names. Read-only.
type family struct {
	raw, name string
}

// New returns the empty cache of sandbox id, pod unknown.
func New(id string) *Sandbox {
	s := &Sandbox{
		id: id,
		lb: labels.NewBuilder(labels.EmptyLabels()),
	}
	s.setVals(cri.Pod{}, false)
	return s
}

// ID is the sandbox id.
func (s *Sandbox) ID() string { return s.id }

// Pod returns the pod the sandbox's labels name, and whether one was set.
func (s *Sandbox) Pod() (cri.Pod, bool) { return s.pod, s.podKnown }

// Labels is the sandbox's own labels as every pull line carries them
// (exposition.SandboxLabels).
func (s *Sandbox) Labels() string { return s.labels }

// Values is the sandbox's label values for push label templates.
func (s *Sandbox) Values() *Values { return s.vals }

// Live is the number of distinct valid series of the last Parse.
func (s *Sandbox) Live() int { return s.live }

// Len is the number of series spellings cached.
func (s *Sandbox) Len() int { return s.spells }

// Footprint returns the entry slots in use or free and the free ones
// (tests check that a shrunk sandbox gives memory back).
func (s *Sandbox) Footprint() (slots, free int) { return len(s.entries), len(s.free) }

// Samples is the last Parse's push samples (collect), in exposition
// order; valid until the next Parse or ClearSamples.
func (s *Sandbox) Samples() []Sample { return s.samples }

// ClearSamples forgets the push samples once the push phase used them.
// Their memory (16 bytes a series, 2.4 MB at 200 sandboxes of the shared
// exposition) is held between rounds only by a sync.Pool shared by all
// sandboxes, which lets it go once two GC cycles passed without a push
// round taking it back: it is not held while pull rounds and requests
// keep the GC busy, and costs no allocation while push rounds follow each
// other with few collections between them. The next collect round takes
// a slice from the pool, else allocates one at the size this round needed.
func (s *Sandbox) ClearSamples() {
	s.nSamples = len(s.samples)
	if cap(s.samples) > 0 {
		p := s.samples[:0]
		samplePool.Put(&p)
	}
	s.samples, s.tss = nil, nil
}

// samplePool holds push sample slices between push rounds (ClearSamples).
var samplePool sync.Pool // *[]Sample

// newSamples returns an empty samples slice for a round of about n
// samples: a pooled one that fits (not over twice as big: sandboxes of
// other sizes share the pool), else a new one.
func newSamples(n int) []Sample {
	if p, _ := samplePool.Get().(*[]Sample); p != nil && cap(*p) >= n && cap(*p) <= 2*n {
		return (*p)[:0]
	}
	return make([]Sample, 0, n)
}

// Entry returns the entry of a Sample; the push phase sets its Sent.
func (s *Sandbox) Entry(i int32) *Entry { return &s.entries[i] }

// Timestamp returns a Sample's own timestamp (its TS >= 0), in ms.
func (s *Sandbox) Timestamp(i int32) int64 { return s.tss[i] }

// TakeEvicted calls fn with every pushable series that disappeared since
// the last call (for its staleness marker), then forgets them.
func (s *Sandbox) TakeEvicted(fn func(Gone)) {
	for _, g := range s.evicted {
		fn(g)
	}
	if cap(s.evicted) > 64 { // all series went once: do not keep room for all
		s.evicted = nil
		return
	}
	clear(s.evicted)
	s.evicted = s.evicted[:0]
}

// SetPod gives the sandbox its pod's labels. Every series changes labels:
// all are forgotten (TakeEvicted hands them to the push phase).
func (s *Sandbox) SetPod(pod cri.Pod) {
	s.EvictAll()
	s.setVals(pod, true)
}

func (s *Sandbox) setVals(pod cri.Pod, known bool) {
	s.pod, s.podKnown = pod, known
	s.vals = series.NewValues(s.id, pod.UID, pod.Name, pod.Namespace)
	s.labels = exposition.SandboxLabels(s.id, pod.UID, pod.Name, pod.Namespace, known)
}

// EvictAll forgets every series, e.g. when the scrape failed or the pod
// labels changed; TakeEvicted hands them to the push phase.
func (s *Sandbox) EvictAll() {
	for i := range s.entries {
		if e := &s.entries[i]; e.Info != nil {
			s.evict(e)
		}
	}
	clear(s.entries)
	s.entries, s.free = s.entries[:0], s.free[:0]
	s.byInfo, s.byRaw, s.spells = nil, nil, 0
	s.live, s.seen = 0, 0
	s.samples = s.samples[:0]
	s.layout = nil
	s.shape = nil
}

// evict records a series that disappeared for its staleness marker.
func (s *Sandbox) evict(e *Entry) {
	if e.Tmpl != nil {
		s.evicted = append(s.evicted, Gone{Tmpl: e.Tmpl, Vals: s.vals, Hash: e.Hash, Sent: e.Sent})
	}
}

// add stores the entry of a series seen for the first time under this
// spelling and returns its index: an existing entry when it is the same
// series spelled differently.
func (s *Sandbox) add(e Entry) int32 {
	if e.Info != invalid {
		if i, ok := s.byInfo[e.Info.Canon]; ok {
			return i
		}
	}
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
		s.entries[i] = e
	} else {
		i = int32(len(s.entries))
		s.entries = append(s.entries, e)
	}
	if e.Info != invalid {
		s.byInfo[e.Info.Canon] = i
	}
	return i
}

// ensureMaps builds byRaw and byInfo when they were dropped: byInfo from
// the entries, byRaw from the layout, whose series steps hold every raw
// text of the last parse with its entry (s.idx). Keys are substrings of
// the layout's shared text: nothing is copied. Spellings of earlier
// rounds are not restored; a later full parse finds their entry through
// byInfo.
func (s *Sandbox) ensureMaps() {
	if s.byRaw != nil {
		return
	}
	s.byInfo = make(map[string]int32, len(s.entries)-len(s.free))
	for i := range s.entries {
		if in := s.entries[i].Info; in != nil && in != invalid {
			s.byInfo[in.Canon] = int32(i)
		}
	}
	s.byRaw = make(map[string]int32, len(s.entries))
	if l := s.layout; l != nil {
		k := 0
		l.Series(func(raw string) {
			s.byRaw[raw] = s.entryAt(k)
			k++
		})
	}
	s.spells = len(s.byRaw)
}

// entryAt returns the entry of the layout's series step k.
func (s *Sandbox) entryAt(k int) int32 {
	if s.idx == nil {
		return int32(k)
	}
	return s.idx[k]
}

// dropMaps frees byRaw and byInfo once the sandbox has a layout
// (ensureMaps rebuilds them).
func (s *Sandbox) dropMaps() {
	if s.layout != nil {
		s.byRaw, s.byInfo = nil, nil
	}
}

// sweep forgets series not seen in this round, and compacts entries when
// most of it is free (a sandbox whose series set shrank for good): it
// reports whether it did.
func (s *Sandbox) sweep(round uint64) bool {
	s.ensureMaps()
	r := uint32(round)
	for k, i := range s.byRaw {
		if s.entries[i].seen != r {
			delete(s.byRaw, k)
		}
	}
	s.spells = len(s.byRaw)
	for i := range s.entries {
		e := &s.entries[i]
		if e.Info == nil || e.seen == r {
			continue
		}
		if e.Info != invalid {
			delete(s.byInfo, e.Info.Canon)
			s.evict(e)
		}
		*e = Entry{}
		s.free = append(s.free, int32(i))
	}
	if len(s.entries) > 1024 && len(s.free) > len(s.entries)/2 {
		s.compact()
		return true
	}
	return false
}

// compact moves the used entries to the front of a right-sized slice,
// renumbering the maps and this round's samples.
func (s *Sandbox) compact() {
	moved := make(map[int32]int32, len(s.entries)-len(s.free))
	entries := make([]Entry, 0, len(s.entries)-len(s.free))
	for i, e := range s.entries {
		if e.Info != nil {
			moved[int32(i)] = int32(len(entries))
			entries = append(entries, e)
		}
	}
	for k, i := range s.byRaw {
		s.byRaw[k] = moved[i]
	}
	for k, i := range s.byInfo {
		s.byInfo[k] = moved[i]
	}
	for i := range s.samples {
		s.samples[i].Entry = moved[s.samples[i].Entry]
	}
	s.entries, s.free = entries, nil
}

// def returns the index of this round's family named raw, creating it.
func (s *Sandbox) def(env *Env, raw []byte) int {
	if i, ok := s.defIdx[string(raw)]; ok {
		return i
	}
	return s.newDef(env.family(env.strs.bytes(raw)))
}

// defName is def for a name that is already a long-lived string.
func (s *Sandbox) defName(env *Env, name string) int {
	if i, ok := s.defIdx[name]; ok {
		return i
	}
	return s.newDef(env.family(name))
}

// newDef adds family fam to the round's families and returns its index.
func (s *Sandbox) newDef(fam *family) int {
	n := len(s.defs)
	if n < cap(s.defs) {
		s.defs = s.defs[:n+1]
		s.defs[n] = famDef{names: s.defs[n].names[:0]}
	} else {
		s.defs = append(s.defs, famDef{})
	}
	d := &s.defs[n]
	d.fam, d.typ = fam, model.MetricTypeUnknown
	s.defIdx[fam.raw] = n
	return n
}
