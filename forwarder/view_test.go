package forwarder

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestView(t *testing.T) {
	r := newRig(t, withConfig(func(c *Config) { c.SnapshotMaxAge = 5 * time.Second }))
	r.sbs.set("aaa")
	r.scraper.set("aaa", "# TYPE up gauge\nup 1\n# TYPE other gauge\nother 2\n")
	ctx := context.Background()
	view := func() (uint64, string, string) {
		var round uint64
		var all, some bytes.Buffer
		require.NoError(t, r.f.View(ctx, model.NoEscaping, func(n uint64, write func(io.Writer, []string) error) error {
			round = n
			if err := write(&all, nil); err != nil {
				return err
			}
			return write(&some, []string{"up"})
		}))
		return round, all.String(), some.String()
	}
	first, all, some := view()
	assert.Equal(t, r.pull(t), all, "same rendering as WriteMetrics")
	assert.Equal(t, "# TYPE up gauge\nup{sandbox_id=\"aaa\"} 1\n", some)
	again, _, _ := view()
	assert.Equal(t, first, again, "fresh snapshot reused: same round number")
	assert.Equal(t, 1, r.scraper.callCount("aaa"))

	r.clock.Add(5 * time.Second)
	next, _, _ := view()
	assert.Greater(t, next, first, "a new round has a larger number")

	boom := errors.New("boom")
	assert.ErrorIs(t, r.f.View(ctx, model.NoEscaping, func(uint64, func(io.Writer, []string) error) error { return boom }), boom)

	// A caller whose ctx ends while its round runs leaves; the round
	// finishes for the callers sharing it.
	r.clock.Add(5 * time.Second)
	gate := make(chan struct{})
	r.scraper.gate = gate
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	called := false
	go func() {
		errc <- r.f.View(cctx, model.NoEscaping, func(uint64, func(io.Writer, []string) error) error { called = true; return nil })
	}()
	require.Eventually(t, func() bool { return r.scraper.callCount("aaa") == 3 }, 10*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	assert.False(t, called)
	close(gate)
	last, _, _ := view()
	assert.Greater(t, last, next)
	assert.Equal(t, 3, r.scraper.callCount("aaa"), "the cancelled caller's round served the next one")
}
