package scrape

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
)

// TestJitterWaves: a sandbox's jitter is the same every time, inside [0,
// max), one of jitterSlots waves max/jitterSlots apart, and 200 sandboxes
// fill every wave.
func TestJitterWaves(t *testing.T) {
	const max = 500 * time.Millisecond
	waves := map[time.Duration]int{}
	for i := range 200 {
		id := fmt.Sprintf("%064x", i*7919)
		j := jitterFor(id, max)
		require.Equal(t, j, jitterFor(id, max), "the same every round")
		require.GreaterOrEqual(t, j, time.Duration(0))
		require.Less(t, j, max)
		require.Zero(t, j%(max/jitterSlots), "on a wave")
		waves[j]++
	}
	require.Len(t, waves, jitterSlots, "every wave used")
	require.Zero(t, jitterFor("x", 0))
}

// TestScheduledRoundWaits: a scheduled round scrapes a sandbox no earlier
// than its jitter after the round began; an unscheduled one at once.
func TestScheduledRoundWaits(t *testing.T) {
	for _, scheduled := range []bool{true, false} {
		src := &cannedSource{body: []byte("up 1\n"), at: make(chan time.Time, 1)}
		r := benchRound(src, 1)
		r.Scheduled, r.JitterMax = scheduled, time.Second
		tg := NewTarget("sb", r.JitterMax)
		tg.Jitter = 300 * time.Millisecond
		tg.Out = exposition.NewMeta()
		began := time.Now()
		r.All(t.Context(), []*Target{tg})
		at := <-src.at
		if scheduled {
			require.GreaterOrEqual(t, at.Sub(began), tg.Jitter)
		}
		require.Empty(t, tg.Status.Err)
	}
}

// cannedSource answers every scrape with body at once.
type cannedSource struct {
	body []byte
	at   chan time.Time // if not nil, gets the time of each scrape (buffered)
}

func (c *cannedSource) Scrape(_ context.Context, _ string, dst []byte) ([]byte, string, error) {
	if c.at != nil {
		select {
		case c.at <- time.Now():
		default:
		}
	}
	return append(dst[:0], c.body...), "text/plain; version=0.0.4", nil
}

// benchRound is a round over src with the forwarder's defaults.
func benchRound(src Source, n int) *Round {
	counter := func() prometheus.Counter { return prometheus.NewCounter(prometheus.CounterOpts{Name: "c"}) }
	return &Round{
		Source: src, Env: scrapecache.NewEnv(true, nil, nil), Buffers: NewBuffers(32), Log: slog.New(slog.DiscardHandler),
		Metrics: &Metrics{Scrapes: counter(), ScrapesFailed: counter(), ParseErrors: counter(), InvalidSeries: counter(), Duplicates: counter(),
			ScrapeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h"}),
			Dropped:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"reason"})},
		Now: time.Now, Timeout: 5 * time.Second, Concurrency: 32, Collect: true,
		Live: func() []sandbox.Sandbox { return nil },
	}
}

// BenchmarkScheduledRound200: one scheduled round of 200 sandboxes serving
// a Kata shim's exposition from memory, their jitters in [0, 100 ms) in
// jitterSlots waves (waves, as scheduled rounds run) or each its own
// (spread, the scheduling before). cpu-ms/round is the process's CPU
// (user + system) per round: the waves spare the idle process a wake-up
// per scrape.
func BenchmarkScheduledRound200(b *testing.B) {
	const n, max = 200, 100 * time.Millisecond
	body := fakeshim.ExpositionAt(nil, 1)
	for _, mode := range []string{"waves", "spread"} {
		b.Run(mode, func(b *testing.B) {
			r := benchRound(&cannedSource{body: body}, n)
			r.Scheduled, r.JitterMax = true, max
			targets := make([]*Target, n)
			for i := range targets {
				id := fmt.Sprintf("%064x", i)
				targets[i] = NewTarget(id, max)
				targets[i].Out = exposition.NewMeta()
				if mode == "spread" {
					h := fnv.New64a()
					h.Write([]byte(id))
					targets[i].Jitter = time.Duration(h.Sum64() % uint64(max))
				}
			}
			var r0, r1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			for b.Loop() {
				r.Number++
				r.All(context.Background(), targets)
			}
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/round")
		})
	}
}
