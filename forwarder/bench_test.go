package forwarder

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/test/memory"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

// discardAppender counts the series it was given (a round may come in
// several calls).
type discardAppender struct{ ss int }

func (d *discardAppender) Append(_ context.Context, s []series.Series) error {
	d.ss += len(s)
	return nil
}

func benchRig(b testing.TB, n int, opts ...rigOpt) *rig {
	// Production timeouts: a loaded machine must not fail scrapes.
	defaults := func(_ *rig, c *Config, _ *Deps) { c.ScrapeInterval, c.ScrapeTimeout = 15*time.Second, 5*time.Second }
	r := newRig(b, append([]rigOpt{defaults}, opts...)...)
	body := sharedExposition(b)
	ids := make([]string, n)
	for i := range n {
		ids[i] = sandboxID(i)
		r.scraper.set(ids[i], body)
		r.pods.set(ids[i], cri.Pod{UID: "0b5c7c0e-5d1a-4a5e-9b1c-1f7e9d3a2c11", Name: "web-7d9f8c6b5-x2k4q", Namespace: "default"})
	}
	r.sbs.set(ids...)
	return r
}

var cpuTime = selfmetrics.CPUTime

// BenchmarkRound200 is one scheduled push round of 200 sandboxes (759 series
// each) from an in-memory scraper: scrape copy, parse, enrichment,
// conversion to remote-write series, staleness bookkeeping, pull rendering.
func BenchmarkRound200(b *testing.B) {
	d := &discardAppender{}
	r := benchRig(b, 200, func(_ *rig, _ *Config, deps *Deps) { deps.Appenders = []Appender{d} })
	r.f.jitterMax = 0 // measure work, not the spreading delay
	ctx := context.Background()
	// The clock advances as the schedule's would: a round whose start does
	// not pass the previous one pushes nothing.
	for range 3 { // warm the caches and buffer free list, as in steady state
		r.f.scheduledRound(ctx)
		r.clock.Add(15 * time.Second)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		d.ss = 0
		r.f.scheduledRound(ctx)
		r.clock.Add(15 * time.Second)
	}
	cpu := cpuTime() - cpu0
	if d.ss != 200*759 {
		b.Fatalf("pushed %d series", d.ss)
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N)/(200*759)*1e6, "cpu-s/Msamples")
}

// BenchmarkPullRound200 is a pull request that finds no fresh snapshot:
// a pull round of 200 sandboxes plus writing the merged exposition.
func BenchmarkPullRound200(b *testing.B) {
	r := benchRig(b, 200, withConfig(func(c *Config) { c.SnapshotMaxAge = 0 }))
	ctx := context.Background()
	for range 3 {
		_ = r.f.WriteMetrics(ctx, io.Discard, nil)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.f.WriteMetrics(ctx, io.Discard, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteMetrics200 renders the merged output of 200 sandboxes from
// a snapshot (the common case of a pull request).
func BenchmarkWriteMetrics200(b *testing.B) {
	r := benchRig(b, 200)
	ctx := context.Background()
	var cw countWriter
	if err := r.f.WriteMetrics(ctx, &cw, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(cw.n)
	b.ReportAllocs()
	for b.Loop() {
		if err := r.f.WriteMetrics(ctx, io.Discard, nil); err != nil {
			b.Fatal(err)
		}
	}
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// BenchmarkPushRound200 is BenchmarkRound200 into a real remotewrite.Queue
// (test/memory's Sink: WAL in a temp dir, fsync per segment, sender
// posting to an httptest receiver in the same process): the daemon's whole push path except the
// shims' HTTP, in steady state. Profile it with -cpuprofile.
func BenchmarkPushRound200(b *testing.B) { benchPushRound200(b) }

// BenchmarkPushRound200V2 is BenchmarkPushRound200 with the endpoint
// sending remote write 2.0 (and, in the zstd sub-benchmark, zstd).
func BenchmarkPushRound200V2(b *testing.B) {
	for _, comp := range []string{codec.CompressionSnappy, codec.CompressionZstd} {
		b.Run(comp, func(b *testing.B) {
			benchPushRound200(b, func(c *config.Config) { c.ProtobufMessage, c.Compression = codec.MessageV2, comp })
		})
	}
}

func benchPushRound200(b *testing.B, opts ...func(*config.Config)) {
	sink := memory.NewSink(b, "", opts...)
	m := benchRig(b, 200, func(_ *rig, _ *Config, d *Deps) { d.Appenders = []Appender{sink.Queue} })
	m.f.jitterMax = 0
	ctx := context.Background()
	for range 3 {
		m.f.scheduledRound(ctx)
		m.clock.Add(5 * time.Second)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		m.f.scheduledRound(ctx)
		m.clock.Add(5 * time.Second)
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(cpu.Seconds()/float64(b.N)/(200*759)*1e6, "cpu-s/Msamples")
	// Wire bytes per sample: wait until the sender has sent every round
	// (the request count stops moving), then divide the bodies received
	// by the samples of every round, the warm-up ones included.
	for last := int64(-1); last != sink.Requests.Load(); time.Sleep(500 * time.Millisecond) {
		last = sink.Requests.Load()
	}
	b.ReportMetric(float64(sink.Body.Load())/float64((b.N+3)*200*759), "wire-B/sample")
}
