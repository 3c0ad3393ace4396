package forwarder

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/forwarder/push"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// syncBuffer is a log sink safe for the scrape goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func withLog(buf *syncBuffer) rigOpt {
	return func(_ *rig, _ *Config, d *Deps) { d.Logger = slog.New(slog.NewTextHandler(buf, nil)) }
}

// pushedBy returns the samples of the round by metric name and sandbox.
func pushedBy(ss []series.Series) map[string]series.Sample {
	out := map[string]series.Sample{}
	for _, s := range ss {
		l := labelsOf(s)
		out[l["__name__"]+"/"+l["sandbox_id"]] = s.Samples[0]
	}
	return out
}

// TestPushTimestampRules: which pushed samples keep the shim's own
// timestamp, which take the round's and which are dropped, round after
// round. Long for its table of six timestamp cases, each a run of rounds.
func TestPushTimestampRules(t *testing.T) {
	const minute = int64(60_000)
	// A step is one scheduled round of sandbox "bad" exposing g with the
	// value and the timestamp ts(start of the first round, start of this
	// round) (0: none), next to a healthy sandbox "ok".
	type step struct {
		v      float64
		ts     func(first, now int64) int64
		queued bool
	}
	at := func(d int64) func(first, now int64) int64 { return func(first, _ int64) int64 { return first + d } }
	fromNow := func(d int64) func(first, now int64) int64 { return func(_, now int64) int64 { return now + d } }
	back := func(first, now int64) int64 { return first - (now-first)/15_000*1000 } // 1 s back per round
	tests := []struct {
		name        string
		honor       bool
		steps       []step
		wantDropped map[string]float64
		wantRepeat  float64
		wantLogs    int
	}{{
		name:  "normal: own timestamps advancing",
		honor: true,
		steps: []step{{1, fromNow(-500), true}, {2, fromNow(-500), true}, {3, fromNow(-500), true}},
	}, {
		name:        "frozen timestamp, value changing",
		honor:       true,
		steps:       []step{{1, at(0), true}, {2, at(0), false}, {3, at(0), false}},
		wantDropped: map[string]float64{push.ReasonDuplicateTS: 2},
		wantLogs:    1,
	}, {
		name:        "timestamp stepping back 1 s per round",
		honor:       true,
		steps:       []step{{1, back, true}, {2, back, false}, {3, back, false}},
		wantDropped: map[string]float64{push.ReasonOutOfOrder: 2},
		wantLogs:    1,
	}, {
		name:       "equal timestamp, equal value: already queued, nothing lost",
		honor:      true,
		steps:      []step{{1, at(0), true}, {1, at(0), false}, {1, at(0), false}},
		wantRepeat: 2,
	}, {
		name:        "far future: more than 10 minutes ahead",
		honor:       true,
		steps:       []step{{1, fromNow(11 * minute), false}, {2, fromNow(9 * minute), true}, {3, fromNow(9*minute - 30_000), false}},
		wantDropped: map[string]float64{push.ReasonFuture: 1, push.ReasonOutOfOrder: 1},
		wantLogs:    1,
	}, {
		name:  "honor_timestamps false: round time, never dropped",
		honor: false,
		steps: []step{{1, back, true}, {2, back, true}, {3, at(0), true}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			r := newRig(t, withPush, withLog(&logs), withConfig(func(c *Config) { c.HonorTimestamps = tc.honor }))
			r.sbs.set("bad", "ok")
			first := r.clock.Now().UnixMilli()
			for i, s := range tc.steps {
				now := r.clock.Now().UnixMilli()
				ts := s.ts(first, now)
				r.scraper.set("bad", fmt.Sprintf("# TYPE g gauge\ng %v %d\nup 1\n", s.v, ts))
				r.scraper.set("ok", "up 1\n")
				got := pushedBy(r.scheduled(t))
				assert.Equal(t, series.Sample{Value: 1, Timestamp: now}, got["up/ok"], "round %d: the healthy sandbox loses nothing", i)
				assert.Equal(t, series.Sample{Value: 1, Timestamp: now}, got["up/bad"], "round %d: nor the bad one's other series", i)
				smp, ok := got["g/bad"]
				require.Equal(t, s.queued, ok, "round %d: g queued", i)
				if ok {
					want := ts
					if !tc.honor {
						want = now
					}
					assert.Equal(t, series.Sample{Value: s.v, Timestamp: want}, smp, "round %d", i)
				}
				r.clock.Add(15 * time.Second)
			}
			for _, reason := range push.Reasons {
				assert.Equal(t, tc.wantDropped[reason], r.counter(t, "kata_monitor_forwarder_samples_dropped_total", reason), reason)
			}
			assert.Equal(t, tc.wantRepeat, r.counter(t, "kata_monitor_forwarder_samples_repeated_total"))
			assert.Equal(t, tc.wantLogs, strings.Count(logs.String(), "does not advance its series"), "logged once per series:\n%s", logs.String())
			if tc.wantLogs > 0 {
				assert.Contains(t, logs.String(), `series="g{sandbox_id=\"bad\"}"`)
			}
		})
	}
}

func TestPushClockSteppingBack(t *testing.T) {
	var logs syncBuffer
	r := newRig(t, withPush, withLog(&logs))
	r.sbs.set("aaa")
	r.scraper.set("aaa", "up 1\nx 2\n")
	require.Len(t, r.scheduled(t), 2)
	r.clock.Add(-time.Minute)
	r.scraper.set("aaa", "up 1\n") // x vanishes: its marker would be out of order too
	assert.Empty(t, r.scheduled(t), "nothing before the last push round is queued")
	assert.Equal(t, 2.0, r.counter(t, "kata_monitor_forwarder_samples_dropped_total", push.ReasonOutOfOrder))
	r.clock.Add(30 * time.Second)
	assert.Empty(t, r.scheduled(t))
	assert.Equal(t, 1, strings.Count(logs.String(), "wall clock stepped back"), "logged once per streak")
	r.clock.Add(31 * time.Second)
	got := pushedBy(r.scheduled(t))
	assert.Equal(t, series.Sample{Value: 1, Timestamp: r.clock.Now().UnixMilli()}, got["up/aaa"])
	assert.Equal(t, 3.0, r.counter(t, "kata_monitor_forwarder_samples_dropped_total", push.ReasonOutOfOrder))
}

// Prometheus's scrape loop sends no staleness marker for a series whose
// sample carried its own timestamp; nor does kata-monitor.
func TestPushNoStalenessMarkerForOwnTimestamps(t *testing.T) {
	r := newRig(t, withPush)
	r.sbs.set("aaa")
	now := r.clock.Now().UnixMilli()
	r.scraper.set("aaa", fmt.Sprintf("own 1 %d\nround 1\n", now-1000))
	require.Len(t, r.scheduled(t), 2)
	r.clock.Add(15 * time.Second)
	r.scraper.set("aaa", "up 1\n")
	got := pushedBy(r.scheduled(t))
	require.Contains(t, got, "round/aaa")
	assert.True(t, value.IsStaleNaN(got["round/aaa"].Value), "a round-stamped series gets its marker")
	assert.NotContains(t, got, "own/aaa", "a series with its own timestamp gets none")
	// It comes back with an older timestamp after its absence: still caught.
	r.clock.Add(15 * time.Second)
	r.scraper.set("aaa", fmt.Sprintf("own 2 %d\n", now-2000))
	assert.NotContains(t, pushedBy(r.scheduled(t)), "own/aaa")
	assert.Equal(t, 1.0, r.counter(t, "kata_monitor_forwarder_samples_dropped_total", push.ReasonOutOfOrder))
}
