package push

import (
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
)

// Timestamp rules of the push path. Receivers refuse a sample whose
// timestamp does not advance its series (Prometheus answers 400 "duplicate
// sample for timestamp" or "out of order sample" for the whole request), so
// one shim with a frozen or backwards timestamp would cost every sandbox's
// data. kata-monitor checks it before a sample is queued, per series:
//
//   - A sample without a timestamp gets the round's start time. A round
//     whose start is not after the previous push round's (the wall clock
//     stepped back) queues none of them: each is dropped as out_of_order
//     (logged once per streak).
//   - A sample with its own timestamp (honor_timestamps: true, the
//     default, as in Prometheus) keeps it, unless it is more than
//     futureLimit ahead of the round's start: dropped as
//     too_far_in_future (Mimir's creation_grace_period default is the
//     same 10 minutes; Prometheus's TSDB has no bound). Otherwise, when
//     it is not after the last queued sample of its series it is dropped
//     as duplicate_timestamp (same time, another value), out_of_order
//     (earlier), or, same time and same value, counted as repeated: the
//     sample is already queued and nothing is lost (Prometheus's TSDB
//     ignores such a sample silently too). Each series is logged once.
//   - A sample older than what the receiver still accepts (Prometheus:
//     older than its head block, about 1-2 hours; Mimir: past its
//     out-of-order window) is not dropped here: the receiver refuses that
//     series and the remote-write queue drops and counts only it.
//
// A series whose last queued sample had its own timestamp gets no staleness
// marker when it disappears (as Prometheus's scrape loop does: a marker at
// the round's time would say nothing about such a series).
const futureLimit = 10 * time.Minute

// Reasons a timestamp rule refuses a sample, as Counts.Dropped indexes them
// (the reason label of kata_monitor_forwarder_samples_dropped_total).
const (
	ReasonDuplicateTS = "duplicate_timestamp"
	ReasonOutOfOrder  = "out_of_order"
	ReasonFuture      = "too_far_in_future"
)

// Reasons lists the reasons in Counts.Dropped's order.
var Reasons = [3]string{ReasonDuplicateTS, ReasonOutOfOrder, ReasonFuture}

// seriesTS is what the timestamp rule keeps about a series that carried its
// own timestamp at least once: 32 bytes, only for such series.
type seriesTS struct {
	ts       int64   // last queued timestamp (ms); math.MinInt64: none yet
	v        float64 // last queued value
	round    uint32  // last push round that checked a sample of it
	explicit bool    // the last queued sample had its own timestamp
	logged   bool    // a drop was logged
}

// sandboxTS holds the tracked series of one sandbox, by push label hash.
type sandboxTS struct {
	round  uint64 // last push round that listed the sandbox
	series map[uint64]*seriesTS
}

// tsGuard applies the rules above; only the round in flight uses it.
type tsGuard struct {
	honor     bool
	log       *slog.Logger
	sandboxes map[string]*sandboxTS
	lastRound int64 // start (ms) of the last push round that queued round-stamped samples
	haveRound bool
	clockBack bool // the current streak of backwards rounds was logged
	// counts of the current round, added to the metrics once
	dropped  [3]int // duplicate, out of order, future
	repeated int
}

// tsKeep is how long (push rounds) a series that is no longer exposed stays
// tracked: if it comes back with an older timestamp later than that, the
// receiver refuses it and the queue drops only that series.
const tsKeep = 10

// roundOK reports whether round-stamped samples of a round starting at ts
// may be queued, logging the first round of a backwards streak.
func (g *tsGuard) roundOK(ts int64) bool {
	if !g.haveRound || ts > g.lastRound {
		if g.clockBack {
			g.log.Info("round timestamps advance again", "round_start_ms", ts, "previous_round_ms", g.lastRound)
		}
		g.clockBack = false
		return true
	}
	if !g.clockBack {
		g.log.Warn("round start is not after the previous push round (wall clock stepped back?): its samples are dropped until the clock passes it",
			"round_start_ms", ts, "previous_round_ms", g.lastRound)
	}
	g.clockBack = true
	return false
}

// roundDone records the start of a round that queued round-stamped samples.
func (g *tsGuard) roundDone(ts int64, ok bool) {
	if ok {
		g.lastRound, g.haveRound = ts, true
	}
}

// sandbox returns the tracked series of sandbox id (nil: none), marking it
// listed in round.
func (g *tsGuard) sandbox(id string, round uint64) *sandboxTS {
	sb := g.sandboxes[id]
	if sb != nil {
		sb.round = round
	}
	return sb
}

// check decides whether a sample of the series with push hash h may be
// queued: roundTS is the round's start, t the sample's timestamp, explicit
// whether t came from the exposition, roundOK the result of roundOK. It
// returns false for a sample not to queue (counted here), and records a
// queued sample of a tracked series. sbp is the sandbox's tracked series,
// created on first use; tmpl and vals render the series for the log.
func (g *tsGuard) check(sbp **sandboxTS, id string, round uint64, h uint64, tmpl *scrapecache.Template, vals *scrapecache.Values,
	roundTS, t int64, v float64, explicit, roundOK bool) bool {
	sb := *sbp
	var s *seriesTS
	if sb != nil {
		s = sb.series[h]
	}
	if !explicit {
		if !roundOK {
			g.dropped[1]++
			return false
		}
		if s == nil {
			return true // the common case: never had its own timestamp
		}
	}
	if s == nil {
		if sb == nil {
			sb = &sandboxTS{round: round, series: make(map[uint64]*seriesTS)}
			g.sandboxes[id] = sb
			*sbp = sb
		}
		s = &seriesTS{ts: math.MinInt64}
		sb.series[h] = s
	}
	s.round = uint32(round)
	reason := -1
	switch {
	case explicit && t > roundTS+futureLimit.Milliseconds():
		reason = 2
	case t > s.ts:
	case t == s.ts && math.Float64bits(v) == math.Float64bits(s.v):
		g.repeated++
		return false
	case t == s.ts:
		reason = 0
	default:
		reason = 1
	}
	if reason >= 0 {
		g.dropped[reason]++
		if !s.logged {
			s.logged = true
			g.log.Warn("sample not queued: its timestamp does not advance its series (logged once per series)",
				sandbox.LogKey, id, "series", seriesName(tmpl, vals), "reason", Reasons[reason],
				"timestamp_ms", t, "last_queued_ms", s.ts, "round_start_ms", roundTS)
		}
		return false
	}
	s.ts, s.v, s.explicit = t, v, explicit
	return true
}

// noMarker reports whether the series with hash h of sandbox id last
// queued a sample with its own timestamp: it gets no staleness marker.
func (g *tsGuard) noMarker(id string, h uint64) bool {
	sb := g.sandboxes[id]
	if sb == nil {
		return false
	}
	s := sb.series[h]
	return s != nil && s.explicit
}

// prune forgets sandboxes not listed in round and series not checked for
// tsKeep rounds.
func (g *tsGuard) prune(round uint64) {
	for id, sb := range g.sandboxes {
		if sb.round != round {
			delete(g.sandboxes, id)
			continue
		}
		if round%tsKeep != 0 {
			continue
		}
		for h, s := range sb.series {
			if uint32(round)-s.round > tsKeep {
				delete(sb.series, h)
			}
		}
		if len(sb.series) == 0 {
			delete(g.sandboxes, id)
		}
	}
}

// take returns the round's counts and resets them.
func (g *tsGuard) take() (dropped [3]int, repeated int) {
	dropped, repeated = g.dropped, g.repeated
	g.dropped, g.repeated = [3]int{}, 0
	return dropped, repeated
}

// seriesName renders a push series as name{label="value",...} for a log.
func seriesName(t *scrapecache.Template, v *scrapecache.Values) string {
	var b strings.Builder
	var name string
	first := true
	for _, l := range t.AppendTo(nil, v) {
		if l.Name == "__name__" {
			name = l.Value
			continue
		}
		if first {
			b.WriteByte('{')
			first = false
		} else {
			b.WriteByte(',')
		}
		b.WriteString(l.Name)
		b.WriteString(`="`)
		b.WriteString(l.Value)
		b.WriteByte('"')
	}
	if !first {
		b.WriteByte('}')
	}
	return name + b.String()
}
