package push

import (
	"log/slog"
	"math"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/value"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// Builder converts scheduled rounds of shim series into remote-write series
// and keeps what that needs between rounds: the sent series for staleness
// markers, the timestamp rules' state, the family metadata. Build it with
// NewBuilder. It is not safe for concurrent use: only the round in flight
// calls it.
type Builder struct {
	round uint64
	// dedupe is set when metric_relabel_configs can make two series equal
	// (across sandboxes too): last then maps the hash of every series sent
	// to the last push round that sent it (collisions of the 64-bit hash
	// are ignored, as Prometheus does in its scrape cache). Without
	// relabelling, sandbox_id keeps sandboxes apart and a sandbox's entries
	// are distinct series: the entries' own sent rounds suffice.
	dedupe     bool
	last       map[uint64]uint64
	candidates []scrapecache.Gone  // disappeared since the last push round
	pending    map[uint64]struct{} // candidates due a marker this round (no dedupe)
	// series and samples are one chunk, reused. A series is its
	// template and its sandbox's values (no label set is built per
	// round), which remotewrite encodes from wire bytes it prepared once.
	series  []series.Series
	samples []series.Sample
	// emit takes the chunks of the round being built.
	emit    func([]series.Series)
	md      []series.Metadata
	mdRound uint64
	// famMD maps this round's family names to their metadata, which every
	// pushed series of the family carries (SetFamilies, metadataOf);
	// prevMD is the previous round's, for the staleness markers of
	// families that vanished.
	famMD, prevMD map[string]*series.Metadata
	// metadataOf's last name and answer, valid until SetFamilies.
	lastMDName string
	lastMD     *series.Metadata
	lastMDOK   bool
	// ts applies the timestamp rules (timestamps.go) before a sample is
	// queued.
	ts tsGuard
	// counts of the round being built
	counts Counts
}

// Counts are what building one push left out or added, for the caller's
// metrics. Build and Self.Push return them per round.
type Counts struct {
	// RelabelDropped counts samples metric_relabel_configs dropped.
	RelabelDropped int
	// Duplicates counts samples of a series relabelling made equal to
	// one already added this round.
	Duplicates int
	// StalenessMarkers counts the markers added for vanished series.
	StalenessMarkers int
	// Dropped counts samples the timestamp rules refused, indexed like
	// Reasons.
	Dropped [3]int
	// Repeated counts samples not queued again because they repeat their
	// series' last queued sample (nothing lost).
	Repeated int
	// Samples counts the samples handed to emit, markers included.
	Samples int
}

// NewBuilder returns a Builder. dedupe must be set when
// metric_relabel_configs can make two series equal (across sandboxes too);
// honorTimestamps keeps the timestamps the shims expose (see the rules in
// timestamps.go); log gets the timestamp rules' warnings.
func NewBuilder(dedupe, honorTimestamps bool, log *slog.Logger) *Builder {
	b := &Builder{dedupe: dedupe}
	if dedupe {
		b.last = make(map[uint64]uint64)
	}
	b.ts = tsGuard{honor: honorTimestamps, log: log, sandboxes: make(map[string]*sandboxTS)}
	return b
}

// Release moves the series that disappeared from sb into the staleness
// candidates, but for those whose last queued sample had its own timestamp
// (no marker for them, as in Prometheus). Every round calls it for every
// sandbox it listed and every sandbox that left (pull rounds too).
func (ps *Builder) Release(sb *scrapecache.Sandbox) {
	sb.TakeEvicted(func(g scrapecache.Gone) {
		if !ps.ts.noMarker(sb.ID(), g.Hash) {
			ps.candidates = append(ps.candidates, g)
		}
	})
}

// Chunk is how many series Build and Self.Push hand to emit at a time. The
// series and samples of one chunk are built into buffers reused for the
// next (~1.4 MiB), instead of the whole round's staying allocated between
// rounds. A remotewrite.Queue writes each chunk as one WAL group: one
// write and fsync, and one acknowledgement (ack file written and fsynced)
// once sent. At 8192 those were 19 groups a round at 200 sandboxes and
// 14 % of the daemon's CPU in steady state; 16384 halves them for 0.7 MiB
// more (32768 measured 1.07 against 1.17 CPU-s per million samples, for
// about 5 MiB more peak RSS). docs/benchmarks.md, "Push cost, session 5".
const Chunk = 16384

// Build converts a scheduled round starting at ts (Unix ms) into series and
// hands them to emit in chunks of at most Chunk: the samples of the live
// sandboxes sbs in the given (id) order, then one staleness marker for every series sent in the previous
// push round and not in this one. Each series appears once per round, so
// chunking never reorders a series. The chunk passed to emit is reused
// after it returns. Call SetFamilies first. Phases: beginChunks,
// markPending, addSamples, addMarkers, then the counts.
func (ps *Builder) Build(sbs []*scrapecache.Sandbox, ts int64, emit func([]series.Series)) Counts {
	ps.round++
	ps.counts = Counts{}
	ps.beginChunks(emit)
	ps.markPending()
	roundOK := ps.ts.roundOK(ts)
	ps.addSamples(sbs, ts, roundOK)
	ps.addMarkers(ts, roundOK)
	ps.flush()
	ps.emit = nil
	ps.ts.roundDone(ts, roundOK)
	ps.ts.prune(ps.round)
	ps.counts.Dropped, ps.counts.Repeated = ps.ts.take()
	return ps.counts
}

// beginChunks readies the reused chunk buffers for a round whose chunks go
// to emit.
func (ps *Builder) beginChunks(emit func([]series.Series)) {
	ps.emit = emit
	if cap(ps.samples) < Chunk {
		ps.samples = make([]series.Sample, Chunk)
		ps.series = make([]series.Series, 0, Chunk)
	}
	ps.samples = ps.samples[:Chunk]
	ps.series = ps.series[:0]
}

// flush hands the chunk built so far to emit.
func (ps *Builder) flush() {
	if len(ps.series) == 0 {
		return
	}
	ps.emit(ps.series)
	clear(ps.series)
	ps.series = ps.series[:0]
}

// add appends one series (the template with the sandbox's values) with
// one sample to the chunk, flushing a full one first.
func (ps *Builder) add(t *scrapecache.Template, vals *scrapecache.Values, md *series.Metadata, v float64, ts int64) {
	if len(ps.series) == Chunk {
		ps.flush()
	}
	i := len(ps.series)
	ps.samples[i] = series.Sample{Value: v, Timestamp: ts}
	ps.series = append(ps.series, series.Series{Template: t, Values: vals, Samples: ps.samples[i : i+1 : i+1], Metadata: md})
	ps.counts.Samples++
}

// markPending notes, without dedupe, the candidates sent in the previous
// push round: due a marker unless a live series of the same hash is sent
// in this one (it vanished in a pull round and reappeared under a new
// entry).
func (ps *Builder) markPending() {
	if ps.dedupe || ps.round <= 1 {
		return
	}
	for _, g := range ps.candidates {
		if g.Sent == uint32(ps.round-1) {
			if ps.pending == nil {
				ps.pending = make(map[uint64]struct{})
			}
			ps.pending[g.Hash] = struct{}{}
		}
	}
}

// addSamples adds the round's samples of every sandbox, but those
// relabelling dropped, duplicates after relabelling and those the
// timestamp rules refuse, counting each.
func (ps *Builder) addSamples(sbs []*scrapecache.Sandbox, ts int64, roundOK bool) {
	for _, sb := range sbs {
		id := sb.ID()
		sbTS := ps.ts.sandbox(id, ps.round)
		vals := sb.Values()
		for _, rec := range sb.Samples() {
			e := sb.Entry(rec.Entry)
			if e.Tmpl == nil {
				ps.counts.RelabelDropped++
				continue
			}
			if ps.dedupe {
				if ps.last[e.Hash] == ps.round { // two series made equal by relabelling
					ps.counts.Duplicates++
					continue
				}
				ps.last[e.Hash] = ps.round
			}
			t, explicit := ts, rec.TS >= 0 && ps.ts.honor
			if explicit {
				t = sb.Timestamp(rec.TS)
			}
			// The common case (round time, clock advancing, no series of
			// the sandbox ever had its own timestamp) needs no check.
			if (explicit || !roundOK || sbTS != nil) &&
				!ps.ts.check(&sbTS, id, ps.round, e.Hash, e.Tmpl, vals, ts, t, rec.Value, explicit, roundOK) {
				continue
			}
			if len(ps.pending) > 0 {
				delete(ps.pending, e.Hash)
			}
			e.Sent = uint32(ps.round)
			ps.add(e.Tmpl, vals, ps.metadataOf(e.Info.OutName), rec.Value, t)
		}
		sb.ClearSamples()
	}
}

// addMarkers adds one staleness marker for every candidate sent in the
// previous push round and not in this one, counting them, and forgets the
// candidates.
func (ps *Builder) addMarkers(ts int64, roundOK bool) {
	staleNaN := math.Float64frombits(value.StaleNaN)
	for _, g := range ps.candidates {
		due := false
		if ps.dedupe {
			sent := ps.last[g.Hash]
			if sent != ps.round {
				delete(ps.last, g.Hash) // no live series has this hash
			}
			due = sent == ps.round-1 && ps.round > 1
		} else if _, ok := ps.pending[g.Hash]; ok {
			delete(ps.pending, g.Hash) // once, even if listed twice
			due = true
		}
		if due && !roundOK {
			ps.ts.dropped[1]++ // a marker before the series' last sample
		} else if due {
			ps.add(g.Tmpl, g.Vals, ps.metadataOf(g.Tmpl.Name()), staleNaN, ts)
			ps.counts.StalenessMarkers++
		}
	}
	// A mass disappearance (every scrape failed, every pod relabelled)
	// must not pin its candidates and their marker set (Go maps never
	// shrink) for as long as the process lives: ~70 bytes a series.
	if len(ps.candidates) > 4096 {
		ps.candidates, ps.pending = nil, nil
		return
	}
	clear(ps.pending)
	clear(ps.candidates)
	ps.candidates = ps.candidates[:0]
}

// SetFamilies indexes this round's families by name, for the metadata
// each pushed series carries. A metadata value is reused
// while its family's is unchanged, so the pointers stay stable across
// rounds; a changed family gets a new value (the old one is never
// modified: appenders may hold it).
func (ps *Builder) SetFamilies(all []*exposition.Family) {
	ps.lastMDOK = false
	old := ps.famMD
	ps.prevMD, ps.famMD = old, make(map[string]*series.Metadata, len(old))
	for _, mf := range all {
		md := &series.Metadata{Family: mf.Name, Type: mf.Type, Help: mf.Help}
		if prev := old[mf.Name]; prev != nil && *prev == *md {
			md = prev
		}
		ps.famMD[mf.Name] = md
	}
}

// familySuffixes are the sample name suffixes of a family's series in the
// text and OpenMetrics expositions (histogram and summary series, counter
// _total and _created, info, gauge histogram).
var familySuffixes = []string{"_bucket", "_sum", "_count", "_total", "_created", "_info", "_gsum", "_gcount"}

// metadataOf returns the metadata of the family a sample name belongs to:
// the family of that name, else of the name without its suffix; nil when
// neither is a family of this round (a name metric_relabel_configs
// changed, say).
func (ps *Builder) metadataOf(name string) *series.Metadata {
	// A family's series are adjacent in an exposition (120 runs of a
	// name among a Kata shim's 759 series): the last answer mostly holds.
	if ps.lastMDOK && name == ps.lastMDName {
		return ps.lastMD
	}
	md := ps.lookupMetadata(name)
	ps.lastMDName, ps.lastMD, ps.lastMDOK = name, md, true
	return md
}

func (ps *Builder) lookupMetadata(name string) *series.Metadata {
	for _, m := range [2]map[string]*series.Metadata{ps.famMD, ps.prevMD} {
		if md, ok := m[name]; ok {
			return md
		}
		for _, suf := range familySuffixes {
			if base, ok := strings.CutSuffix(name, suf); ok {
				if md, ok := m[base]; ok {
					return md
				}
			}
		}
	}
	return nil
}

// Metadata returns the family metadata to send after this round, or nil
// when it is unchanged and was sent less than 10 rounds ago.
func (ps *Builder) Metadata(all []*exposition.Family) []series.Metadata {
	md := make([]series.Metadata, 0, len(all))
	for _, mf := range all {
		md = append(md, series.Metadata{Type: mf.Type, Family: mf.Name, Help: mf.Help})
	}
	if slices.Equal(md, ps.md) && ps.round-ps.mdRound < 10 && ps.mdRound != 0 {
		return nil
	}
	ps.md, ps.mdRound = md, ps.round
	return md
}

// Tracked returns how many series hashes the builder keeps for staleness
// markers between rounds: with dedupe, one per live series sent; never
// more (a leak check for tests).
func (ps *Builder) Tracked() int { return len(ps.last) + len(ps.pending) }

// LastMetadata returns the family metadata Metadata last returned (sorted
// by family name), whether or not this round resends it. The slice is not
// modified afterwards.
func (ps *Builder) LastMetadata() []series.Metadata { return ps.md }
