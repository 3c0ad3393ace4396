package forwarder

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func famNames(s *snapshot) []string {
	var out []string
	for _, mf := range s.Families() {
		out = append(out, mf.Name+"/"+string(mf.Type)+"/"+mf.Help)
	}
	return out
}

// TestPullIdleSkipsRendering: without a pull for max(10m, 4 intervals),
// scheduled rounds push as before but render no pull lines and keep no
// spare buffers; the first pull after that runs a pull round and gets the
// full exposition, and later scheduled rounds render again.
func TestPullIdleSkipsRendering(t *testing.T) {
	r := benchRig(t, 3, withPush)
	r.f.jitterMax = 0
	ctx := context.Background()

	r.f.scheduledRound(ctx) // no pull since start: idle
	require.True(t, r.f.snap.NoPull, "nobody pulled yet: no pull lines rendered")
	want := r.pull(t) // runs a pull round
	require.False(t, r.f.snap.NoPull)
	r.f.scheduledRound(ctx) // somebody pulls now: rounds render
	require.False(t, r.f.snap.NoPull)
	require.Equal(t, want, r.pull(t))
	require.Positive(t, strings.Count(want, "\n"))
	meta := famNames(r.f.snap)

	tests := []struct {
		name    string
		advance bool
		idle    bool
	}{
		{"just before idle", false, false},
		{"idle", true, true},
		{"still idle", false, true},
	}
	r.clock.Add(pullIdleAfter(r.f.cfg.ScrapeInterval) - 1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.advance {
				r.clock.Add(1)
			}
			r.f.scheduledRound(ctx)
			snap := r.f.snap
			require.Equal(t, tc.idle, snap.NoPull)
			require.Equal(t, meta, famNames(snap), "metadata families")
			last := r.appender.rounds[len(r.appender.rounds)-1]
			require.Len(t, last, 3*759, "push unchanged")
			if tc.idle {
				for _, o := range snap.Out {
					require.True(t, o.Meta)
					require.Zero(t, o.Len())
				}
			}
		})
	}

	rounds := r.counter(t, "kata_monitor_rounds_total")
	got := r.pull(t)
	require.Equal(t, rounds+1, r.counter(t, "kata_monitor_rounds_total"), "the first pull after idle runs a pull round")
	require.Equal(t, strings.Count(want, "\n"), strings.Count(got, "\n"))
	require.False(t, r.f.snap.NoPull)

	r.f.scheduledRound(ctx)
	require.False(t, r.f.snap.NoPull, "a pull resumes rendering")
	require.Equal(t, strings.Count(want, "\n"), strings.Count(r.pull(t), "\n"))
}

// TestPullIdleWaiterGetsLines: a pull waiting for a scheduled round that
// started while pulls were idle does not get that round's lines-less
// snapshot: it runs a pull round.
func TestPullIdleWaiterGetsLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := benchRig(t, 2, withPush)
		r.f.jitterMax = 0
		ctx := context.Background()
		r.clock.Add(pullIdleAfter(r.f.cfg.ScrapeInterval))
		gate := make(chan struct{})
		r.scraper.gate = gate
		scheduled := make(chan struct{})
		go func() {
			r.f.scheduledRound(ctx)
			close(scheduled)
		}()
		synctest.Wait() // the scheduled round holds its scrapes on the gate

		done := make(chan string, 1)
		go func() {
			var b strings.Builder
			_ = r.f.WriteMetrics(ctx, &b, nil)
			done <- b.String()
		}()
		synctest.Wait() // the pull waits for the scheduled round
		close(gate)
		got := samples(<-done)
		<-scheduled
		require.Positive(t, got)
		require.False(t, r.f.snap.NoPull)
		require.Equal(t, samples(r.pull(t)), got)
		require.Equal(t, 1.0, testutil.ToFloat64(r.f.m.rounds.WithLabelValues("schedule")))
		// The waiter's own pull round (r.pull reuses its snapshot).
		require.Equal(t, 1.0, testutil.ToFloat64(r.f.m.rounds.WithLabelValues("pull")))
	})
}

// samples counts the sample lines of a text exposition.
func samples(text string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}
