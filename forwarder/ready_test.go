package forwarder

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// holdingAppender is the rig's appender whose Commit waits until release
// is closed, after closing entered.
type holdingAppender struct {
	*fakeAppender
	entered, release chan struct{}
}

func (a *holdingAppender) Commit(ctx context.Context) error {
	close(a.entered)
	<-a.release
	return a.fakeAppender.Commit(ctx)
}

func firstDone(f *Forwarder) bool {
	select {
	case <-f.FirstRoundDone():
		return true
	default:
		return false
	}
}

// TestFirstRoundDone: readiness (FirstRoundDone, /readyz) is announced
// once the first round holds where it counts: pull only, once a round's
// snapshot is served; with appenders, once the first scheduled round was
// also committed to them, not when its snapshot is published (before the
// commit), nor after a pull round (it pushes nothing). Both failed when
// publish closed FirstRoundDone in every mode.
func TestFirstRoundDone(t *testing.T) {
	body := "# TYPE up gauge\nup 1\n"
	t.Run("pull only", func(t *testing.T) {
		r := newRig(t)
		r.serve(map[string]string{"aaa": body})
		require.False(t, firstDone(r.f), "no round yet")
		r.pull(t)
		require.True(t, firstDone(r.f), "a pull round served")
	})
	t.Run("push", func(t *testing.T) {
		a := &holdingAppender{entered: make(chan struct{}), release: make(chan struct{})}
		r := newRig(t, func(r *rig, _ *Config, d *Deps) {
			a.fakeAppender = r.appender
			d.Appenders = []Appender{a}
		})
		r.serve(map[string]string{"aaa": body})
		r.pull(t)
		require.False(t, firstDone(r.f), "a pull round pushes nothing")

		done := make(chan struct{})
		go func() {
			defer close(done)
			r.f.scheduledRound(context.Background())
		}()
		<-a.entered
		require.Positive(t, r.appender.roundCount(), "the round was appended")
		require.False(t, firstDone(r.f), "the round's snapshot is published, its commit not done")
		close(a.release)
		select {
		case <-r.f.FirstRoundDone():
		case <-time.After(time.Minute):
			t.Fatal("FirstRoundDone not closed after the first scheduled round's commit")
		}
		require.Equal(t, 1, r.appender.commitCount())
		<-done
	})
}
