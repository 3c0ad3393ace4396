package forwarder

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestLogKeySandboxID: every log line about one sandbox names it with
// sandbox.LogKey (sandbox_id=, the label's name), whatever the event.
func TestLogKeySandboxID(t *testing.T) {
	var logs syncBuffer
	r := newRig(t, withLog(&logs))
	r.sbs.set("aaa")
	r.scraper.fail("aaa", errors.New("boom"))
	r.pull(t)
	r.clock.Add(time.Minute)
	// Recovered, with a duplicate left out and a parse error.
	r.scraper.set("aaa", "# TYPE g gauge\ng 1\ng 2\nbad{ line\n")
	r.pull(t)
	n := 0
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "aaa") {
			n++
			assert.Contains(t, line, "sandbox_id=aaa")
		}
	}
	assert.Equal(t, 4, n, "failed, recovered, parse error, left out:\n%s", logs.String())
	assert.NotContains(t, logs.String(), "sandbox=")
}
