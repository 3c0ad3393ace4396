package forwarder

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/sources/cri"
)

func TestPushSeriesLabelsAndTimestamps(t *testing.T) {
	r := newRig(t, withPush, withConfig(func(c *Config) {
		c.ExternalLabels = map[string]string{"node": "n1", "a": "ext"}
	}))
	r.sbs.set("aaa")
	r.pods.set("aaa", cri.Pod{UID: "u1", Name: "web", Namespace: "default"})
	r.scraper.set("aaa", "# TYPE up gauge\nup 1\n# TYPE x counter\nx{b=\"2\",a=\"1\"} 5 1600000000000\n")

	ss := r.scheduled(t)
	require.Len(t, ss, 2)
	now := r.clock.Now().UnixMilli()
	for _, s := range ss {
		assert.True(t, sort.SliceIsSorted(s.Labels, func(i, j int) bool { return s.Labels[i].Name < s.Labels[j].Name }))
		require.Len(t, s.Samples, 1)
	}
	assert.Equal(t, map[string]string{"__name__": "up", "a": "ext", "cri_name": "web", "cri_namespace": "default",
		"cri_uid": "u1", "node": "n1", "sandbox_id": "aaa"}, labelsOf(ss[0]))
	assert.Equal(t, series.Sample{Value: 1, Timestamp: now}, ss[0].Samples[0])
	assert.Equal(t, map[string]string{"__name__": "x", "a": "1", "b": "2", "cri_name": "web", "cri_namespace": "default",
		"cri_uid": "u1", "node": "n1", "sandbox_id": "aaa"}, labelsOf(ss[1]), "external labels never override")
	assert.Equal(t, series.Sample{Value: 5, Timestamp: 1600000000000}, ss[1].Samples[0])

	// The next round reuses the cache: same labels, new time. x repeats
	// its last queued sample (same own timestamp, same value): not queued
	// again, counted as repeated, not as dropped.
	r.clock.Add(15 * time.Second)
	ss = r.scheduled(t)
	require.Len(t, ss, 1)
	assert.Equal(t, r.clock.Now().UnixMilli(), ss[0].Samples[0].Timestamp)
	assert.Equal(t, "up", labelsOf(ss[0])["__name__"])
	assert.Equal(t, 1.0, r.counter(t, "kata_monitor_forwarder_samples_repeated_total"))
	assert.Equal(t, 0.0, r.counter(t, "kata_monitor_forwarder_samples_dropped_total"))
}

func relabelRule(mod func(c *relabel.Config)) *relabel.Config {
	c := relabel.DefaultRelabelConfig
	mod(&c)
	return &c
}

// TestPushRelabel: write-side relabel rules applied to pushed series, and
// the samples they drop counted. Long for its table, each row a rule set
// and the series it leaves.
func TestPushRelabel(t *testing.T) {
	body := "# TYPE up gauge\nup 1\n# TYPE kata_shim_fds gauge\nkata_shim_fds 4\n"
	tests := []struct {
		name        string
		rules       []*relabel.Config
		want        []map[string]string
		wantDropped float64
		wantDup     float64
	}{{
		name: "drop",
		rules: []*relabel.Config{relabelRule(func(c *relabel.Config) {
			c.Action, c.SourceLabels, c.Regex = relabel.Drop, model.LabelNames{"__name__"}, relabel.MustNewRegexp("up")
		})},
		want: []map[string]string{
			{"__name__": "kata_shim_fds", "sandbox_id": "aaa"}, {"__name__": "kata_shim_fds", "sandbox_id": "bbb"}},
		wantDropped: 2,
	}, {
		name: "keep",
		rules: []*relabel.Config{relabelRule(func(c *relabel.Config) {
			c.Action, c.SourceLabels, c.Regex = relabel.Keep, model.LabelNames{"__name__"}, relabel.MustNewRegexp("up")
		})},
		want:        []map[string]string{{"__name__": "up", "sandbox_id": "aaa"}, {"__name__": "up", "sandbox_id": "bbb"}},
		wantDropped: 2,
	}, {
		name: "replace",
		rules: []*relabel.Config{
			relabelRule(func(c *relabel.Config) {
				c.Action, c.SourceLabels, c.Regex = relabel.Keep, model.LabelNames{"__name__"}, relabel.MustNewRegexp("up")
			}),
			relabelRule(func(c *relabel.Config) {
				c.SourceLabels, c.Regex, c.TargetLabel, c.Replacement = model.LabelNames{"sandbox_id"}, relabel.MustNewRegexp("(.)..."), "short", "$1-x"
			}),
		},
		want: []map[string]string{
			{"__name__": "up", "sandbox_id": "aaa"}, {"__name__": "up", "sandbox_id": "bbbb", "short": "b-x"}},
		wantDropped: 2,
	}, {
		name: "series made equal by labeldrop are sent once",
		rules: []*relabel.Config{relabelRule(func(c *relabel.Config) {
			c.Action, c.Regex = relabel.LabelDrop, relabel.MustNewRegexp("sandbox_id")
		})},
		want:    []map[string]string{{"__name__": "up"}, {"__name__": "kata_shim_fds"}},
		wantDup: 2,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, withPush, withConfig(func(c *Config) { c.MetricRelabelConfigs = tc.rules }))
			sbs := []string{"aaa", "bbb"}
			if tc.name == "replace" {
				sbs[1] = "bbbb"
			}
			r.sbs.set(sbs...)
			for _, id := range sbs {
				r.scraper.set(id, body)
			}
			var got []map[string]string
			for _, s := range r.scheduled(t) {
				got = append(got, labelsOf(s))
			}
			assert.ElementsMatch(t, tc.want, got)
			assert.Equal(t, tc.wantDropped, r.counter(t, "kata_monitor_series_relabel_dropped_total"))
			assert.Equal(t, tc.wantDup, r.counter(t, "kata_monitor_duplicate_series_total"))
		})
	}
}

// TestPushStaleness runs without relabelling (entries track what they
// sent) and with a rule that changes nothing (series may collide: a map of
// hashes tracks it); both must send the same markers.
func TestPushStaleness(t *testing.T) {
	noop := relabelRule(func(c *relabel.Config) {
		c.SourceLabels, c.Regex, c.TargetLabel, c.Replacement = model.LabelNames{"__name__"}, relabel.MustNewRegexp("never"), "x", "y"
	})
	for _, tc := range []struct {
		name  string
		rules []*relabel.Config
	}{{"entries", nil}, {"dedupe map", []*relabel.Config{noop}}} {
		t.Run(tc.name, func(t *testing.T) {
			testPushStaleness(t, func(_ *rig, c *Config, _ *Deps) { c.MetricRelabelConfigs = tc.rules })
		})
	}
}

// stalenessStep is one scheduled round of testPushStaleness: the live
// sandboxes and their bodies, a failing one, an optional pull round
// before it, and the series (name/sandbox[/pod]) pushed with a value and
// with a staleness marker.
type stalenessStep struct {
	name     string
	ids      []string
	bodies   map[string]string
	fail     string
	pull     bool   // a pull round before the scheduled one
	failPull string // fails during that pull round only
	want     []string
	wantNaN  []string
}

var stalenessSteps = []stalenessStep{{
	name:   "first round",
	ids:    []string{"aaa", "bbb"},
	bodies: map[string]string{"aaa": "up 1\nx 2\n", "bbb": "up 3\n"},
	want:   []string{"up/aaa", "x/aaa", "up/bbb"},
}, {
	name:    "sandbox and series vanish: one marker each",
	ids:     []string{"aaa"},
	bodies:  map[string]string{"aaa": "up 1\n"},
	want:    []string{"up/aaa"},
	wantNaN: []string{"x/aaa", "up/bbb"},
}, {
	name: "markers are sent once",
	ids:  []string{"aaa"},
	want: []string{"up/aaa"},
}, {
	name:    "failed scrape",
	ids:     []string{"aaa"},
	fail:    "aaa",
	wantNaN: []string{"up/aaa"},
}, {
	name: "still failing",
	ids:  []string{"aaa"},
	fail: "aaa",
}, {
	name:   "recovered, series back, a pull round in between",
	ids:    []string{"aaa", "bbb"},
	bodies: map[string]string{"aaa": "up 1\nx 2\n", "bbb": "up 3\n"},
	want:   []string{"up/aaa", "x/aaa", "up/bbb"},
}, {
	name:    "series vanishes during a pull round",
	ids:     []string{"aaa", "bbb"},
	bodies:  map[string]string{"aaa": "up 1\n"},
	pull:    true,
	want:    []string{"up/aaa", "up/bbb"},
	wantNaN: []string{"x/aaa"},
}, {
	name:     "scrape fails in a pull round only: no marker, the series is back",
	ids:      []string{"aaa", "bbb"},
	pull:     true,
	failPull: "aaa",
	want:     []string{"up/aaa", "up/bbb"},
}, {
	name:    "pod metadata arrives: the labels change, old series end",
	ids:     []string{"aaa", "bbb"},
	want:    []string{"up/aaa/web", "up/bbb"},
	wantNaN: []string{"up/aaa"},
}}

// testPushStaleness runs stalenessSteps in order; the last step gives pod
// aaa its metadata.
func testPushStaleness(t *testing.T, opt rigOpt) {
	steps := stalenessSteps
	r := newRig(t, withPush, opt)
	for i, s := range steps {
		r.clock.Add(15 * time.Second)
		r.sbs.set(s.ids...)
		for id, body := range s.bodies {
			r.scraper.set(id, body)
		}
		if s.fail != "" {
			r.scraper.fail(s.fail, errors.New("boom"))
		}
		if i == len(steps)-1 {
			r.pods.set("aaa", cri.Pod{UID: "u", Name: "web", Namespace: "ns"})
		}
		if s.failPull != "" {
			r.scraper.fail(s.failPull, errors.New("boom"))
		}
		if s.pull {
			r.pull(t)
		}
		if s.failPull != "" {
			r.scraper.fail(s.failPull, nil)
		}
		var got, gotNaN []string
		for _, ts := range r.scheduled(t) {
			l := labelsOf(ts)
			key := l["__name__"] + "/" + l["sandbox_id"]
			if l["cri_name"] != "" {
				key += "/" + l["cri_name"]
			}
			smp := ts.Samples[0]
			assert.Equal(t, r.clock.Now().UnixMilli(), smp.Timestamp, s.name)
			if value.IsStaleNaN(smp.Value) {
				gotNaN = append(gotNaN, key)
			} else {
				assert.False(t, math.IsNaN(smp.Value))
				got = append(got, key)
			}
		}
		assert.ElementsMatch(t, s.want, got, s.name)
		assert.ElementsMatch(t, s.wantNaN, gotNaN, s.name)
	}
	assert.Equal(t, 5.0, r.counter(t, "kata_monitor_staleness_markers_total"))
	want := 0
	if len(r.f.cfg.MetricRelabelConfigs) > 0 {
		want = 2 // the live series' hashes
	}
	assert.Equal(t, want, r.f.push.Tracked(), "forgotten series leave the staleness map")
}

func TestPushMetadata(t *testing.T) {
	r := newRig(t, withPush)
	r.sbs.set("aaa")
	r.scraper.set("aaa", "# HELP up Up.\n# TYPE up gauge\nup 1\n# HELP go_goroutines G.\n# TYPE go_goroutines gauge\ngo_goroutines 3\n")
	r.scheduled(t)
	require.Len(t, r.appender.md, 1)
	assert.Equal(t, []series.Metadata{
		{Type: model.MetricTypeGauge, Family: "kata_shim_go_goroutines", Help: "G."},
		{Type: model.MetricTypeGauge, Family: "up", Help: "Up."},
	}, r.appender.md[0])
	r.scheduled(t)
	assert.Len(t, r.appender.md, 1, "unchanged metadata is not resent at once")
	r.scraper.set("aaa", "# HELP up Up.\n# TYPE up gauge\nup 1\n# TYPE c counter\nc 1\n")
	r.scheduled(t)
	require.Len(t, r.appender.md, 2, "a changed family set is sent")
	assert.Equal(t, []string{"c", "up"}, []string{r.appender.md[1][0].Family, r.appender.md[1][1].Family})
	for range 9 {
		r.scheduled(t)
	}
	assert.Len(t, r.appender.md, 2)
	r.scheduled(t)
	assert.Len(t, r.appender.md, 3, "resent every 10 rounds")
}

// TestPushSeriesCarryFamilyMetadata: every pushed series carries its
// family's type and help (remote write 2.0 sends them with each series),
// classic histogram and summary series included, staleness markers too.
func TestPushSeriesCarryFamilyMetadata(t *testing.T) {
	r := newRig(t, withPush)
	r.sbs.set("aaa")
	r.scraper.set("aaa", "# HELP up Up.\n# TYPE up gauge\nup 1\n"+
		"# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\nlat_seconds_bucket{le=\"1\"} 1\nlat_seconds_bucket{le=\"+Inf\"} 2\nlat_seconds_sum 3\nlat_seconds_count 2\n"+
		"# HELP q Quantiles.\n# TYPE q summary\nq{quantile=\"0.5\"} 1\nq_sum 2\nq_count 3\n"+
		"# TYPE c counter\nc_total 4\n"+
		"untyped_one 5\n")
	want := map[string]series.Metadata{
		"up":                 {Family: "up", Type: model.MetricTypeGauge, Help: "Up."},
		"lat_seconds_bucket": {Family: "lat_seconds", Type: model.MetricTypeHistogram, Help: "Latency."},
		"lat_seconds_sum":    {Family: "lat_seconds", Type: model.MetricTypeHistogram, Help: "Latency."},
		"lat_seconds_count":  {Family: "lat_seconds", Type: model.MetricTypeHistogram, Help: "Latency."},
		"q":                  {Family: "q", Type: model.MetricTypeSummary, Help: "Quantiles."},
		"q_sum":              {Family: "q", Type: model.MetricTypeSummary, Help: "Quantiles."},
		"q_count":            {Family: "q", Type: model.MetricTypeSummary, Help: "Quantiles."},
		"c_total":            {Family: "c", Type: model.MetricTypeCounter},
		"untyped_one":        {Family: "untyped_one", Type: model.MetricTypeUnknown},
	}
	check := func(ss []series.Series) {
		t.Helper()
		for _, s := range ss {
			name := labelsOf(s)["__name__"]
			w, ok := want[name]
			require.True(t, ok, "unexpected series %s", name)
			require.NotNil(t, s.Metadata, "series %s has no metadata", name)
			assert.Equal(t, w, *s.Metadata, "series %s", name)
		}
	}
	first := r.scheduled(t)
	require.Len(t, first, 10)
	check(first)
	r.scraper.set("aaa", "# HELP up Up.\n# TYPE up gauge\nup 1\n")
	r.clock.Add(15 * time.Second)
	second := r.scheduled(t)
	require.Len(t, second, 10, "up and 9 staleness markers")
	check(second)
}

func TestPushAppenderErrorDoesNotStop(t *testing.T) {
	bad := &fakeAppender{err: errors.New("disk full")}
	r := newRig(t, func(r *rig, _ *Config, d *Deps) { d.Appenders = []Appender{bad, r.appender} })
	r.sbs.set("aaa")
	r.scraper.set("aaa", "up 1\n")
	r.scheduled(t)
	r.clock.Add(time.Second)
	r.scheduled(t)
	assert.Equal(t, 2, r.appender.roundCount())
	assert.Equal(t, 2.0, r.counter(t, "kata_monitor_appender_errors_total"))
}

// TestRunSchedule runs the schedule in a testing/synctest bubble on the
// real (there: fake) clock, so round times are exact: rounds on every
// interval boundary, and a round that overruns skips the ticks it covered
// instead of running them back to back.
func TestRunSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		realClock := func(_ *rig, _ *Config, d *Deps) { d.Now = nil }
		r := newRig(t, withPush, realClock, withConfig(func(c *Config) {
			c.ScrapeInterval, c.ScrapeTimeout = 100*time.Millisecond, 50*time.Millisecond
		}))
		r.sbs.set("aaa")
		r.scraper.set("aaa", "up 1\n")
		// The first round (at 0) overruns by 3.5 intervals: the ticks at
		// 100, 200 and 300 ms are skipped; rounds follow at 400, 500, ...
		slow := &sleepAppender{first: 350 * time.Millisecond}
		r.f.deps.Appenders = append(r.f.deps.Appenders, slow)

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.f.Run(ctx) }()
		time.Sleep(950 * time.Millisecond)
		cancel()
		require.NoError(t, <-done)
		assert.Equal(t, 3.0, r.counter(t, "kata_monitor_rounds_skipped_total"))
		assert.Equal(t, 7.0, r.counter(t, "kata_monitor_rounds_total"), "0, 400, 500, ... 900 ms")
		assert.Equal(t, 7, r.appender.roundCount())
	})
}

func TestRunPullOnlyWaits(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.f.Run(ctx) }()
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, 0.0, r.counter(t, "kata_monitor_rounds_total"))
}

// sleepAppender takes first to append its first round, as a slow one.
type sleepAppender struct {
	first time.Duration
	calls int
}

func (a *sleepAppender) Append(context.Context, []series.Series) error {
	if a.calls == 0 {
		time.Sleep(a.first)
	}
	a.calls++
	return nil
}

// TestRoundCutByShutdownFinishes: a shutdown while a scheduled round is
// scraping lets the round finish; every shim's samples are appended with
// their values (no staleness marker for the shim still being scraped) and
// the round is committed. Pushing nothing lost a whole round, uncounted, at
// every stop that fell inside a round.
func TestRoundCutByShutdownFinishes(t *testing.T) {
	r := newRig(t, withPush)
	r.sbs.set("aaa", "bbb")
	r.scraper.set("aaa", "up 1\n")
	r.scraper.set("bbb", "up 2\n")
	r.scheduled(t)
	commits := r.appender.commitCount()
	gate := make(chan struct{})
	r.scraper.mu.Lock()
	r.scraper.gate = gate
	r.scraper.mu.Unlock()
	r.scraper.set("aaa", "up 3\n")
	r.scraper.set("bbb", "up 4\n")
	r.clock.Add(15 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.f.scheduledRound(ctx)
	}()
	require.Eventually(t, func() bool {
		return r.scraper.callCount("aaa") == 2 && r.scraper.callCount("bbb") == 2
	}, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case <-done:
		t.Fatal("the round returned while its scrapes were still running")
	default:
	}
	close(gate)
	<-done
	require.Equal(t, 2, r.appender.roundCount())
	got := map[string]float64{}
	for _, ts := range r.appender.round(1) {
		got[labelsOf(ts)["sandbox_id"]] = ts.Samples[0].Value
	}
	assert.Equal(t, map[string]float64{"aaa": 3, "bbb": 4}, got, "both shims' values, no staleness marker")
	assert.Equal(t, commits+1, r.appender.commitCount(), "the round is committed")

	// A round not yet begun when the context ends does not start.
	r.f.scheduledRound(ctx)
	assert.Equal(t, 2, r.appender.roundCount())
}

// TestPushAfterCompaction: a sandbox whose series set shrinks for good has
// its entries compacted in the middle of the round that noticed it; the
// round's samples must still carry their own series' labels.
func TestPushAfterCompaction(t *testing.T) {
	r := newRig(t, withPush)
	r.sbs.set("aaa")
	var big strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&big, "a{i=\"%d\"} %d\n", i, i)
	}
	r.scraper.set("aaa", big.String())
	r.clock.Add(15 * time.Second)
	require.Len(t, r.scheduled(t), 3000)

	r.scraper.set("aaa", "a{i=\"2990\"} 2990\na{i=\"2999\"} 2999\nb 7\n")
	r.clock.Add(15 * time.Second)
	got := map[string]float64{}
	for _, ts := range r.scheduled(t) {
		if v := ts.Samples[0].Value; !value.IsStaleNaN(v) {
			l := labelsOf(ts)
			got[l["__name__"]+"/"+l["i"]] = v
		}
	}
	assert.Equal(t, map[string]float64{"a/2990": 2990, "a/2999": 2999, "b/": 7}, got)
	slots, free := r.f.states["aaa"].Cache.Footprint()
	assert.Equal(t, 3, slots, "compacted")
	assert.Zero(t, free)
}

// committingAppender logs its calls: "append <n>" per chunk, "commit".
type committingAppender struct {
	calls []string
	err   error
}

func (a *committingAppender) Append(_ context.Context, ss []series.Series) error {
	a.calls = append(a.calls, fmt.Sprintf("append %d", len(ss)))
	return nil
}

func (a *committingAppender) Commit(context.Context) error {
	a.calls = append(a.calls, "commit")
	return a.err
}

// TestPushCommitsEachRound: an appender that gathers rounds (Committer,
// remotewrite/tenant.Router) gets Commit once per scheduled round, after
// the round's last chunk, the self-metrics' included; pull rounds push
// and commit nothing; a failing Commit is counted like a failing Append.
func TestPushCommitsEachRound(t *testing.T) {
	ca := &committingAppender{}
	self := prometheus.NewRegistry()
	self.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "kata_monitor_x", Help: "h"}))
	r := newRig(t, func(_ *rig, c *Config, d *Deps) {
		d.Appenders, d.Self, c.PushSelfMetrics = []Appender{ca}, self, true
	})
	r.sbs.set("aaa", "bbb")
	r.scraper.set("aaa", "up 1\n")
	r.scraper.set("bbb", "up 1\n")
	r.f.scheduledRound(context.Background())
	r.pull(t)
	r.clock.Add(time.Second)
	r.f.scheduledRound(context.Background())
	require.Equal(t, []string{"append 2", "append 1", "commit", "append 2", "append 1", "commit"}, ca.calls)

	ca.err = errors.New("disk full")
	r.clock.Add(time.Second)
	r.f.scheduledRound(context.Background())
	assert.Equal(t, 1.0, r.counter(t, "kata_monitor_appender_errors_total"))
}
