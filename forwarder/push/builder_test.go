package push

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/value"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// TestMassDisappearanceReleased: when every series of a big sandbox goes
// at once, each gets its staleness marker, and the candidates and marker
// set built for them are not kept afterwards (a Go map never shrinks).
func TestMassDisappearanceReleased(t *testing.T) {
	const n = 5000
	var body strings.Builder
	for i := range n {
		fmt.Fprintf(&body, "a{i=\"%d\"} 1\n", i)
	}
	env := scrapecache.NewEnv(true, nil, nil)
	sb := scrapecache.New("sb")
	b := NewBuilder(false, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	round := func(r uint64, exp string) (samples, markers int) {
		out := exposition.NewMeta()
		if _, err := sb.Parse(env, []byte(exp), "", r, true, out); err != nil {
			t.Fatal(err)
		}
		b.Release(sb)
		b.Build([]*scrapecache.Sandbox{sb}, int64(r)*1000, func(ss []series.Series) {
			for _, s := range ss {
				if value.IsStaleNaN(s.Samples[0].Value) {
					markers++
				} else if !math.IsNaN(s.Samples[0].Value) {
					samples++
				}
			}
		})
		return samples, markers
	}
	if s, _ := round(1, body.String()); s != n {
		t.Fatalf("round 1 pushed %d samples, want %d", s, n)
	}
	if s, m := round(2, "b 1\n"); s != 1 || m != n {
		t.Fatalf("round 2 pushed %d samples and %d markers, want 1 and %d", s, m, n)
	}
	if cap(b.candidates) != 0 || b.pending != nil {
		t.Errorf("after the markers: candidates cap %d, pending %d entries (map kept: %v)", cap(b.candidates), len(b.pending), b.pending != nil)
	}
	if s, m := round(3, "b 2\n"); s != 1 || m != 0 {
		t.Fatalf("round 3 pushed %d samples and %d markers, want 1 and 0", s, m)
	}
}
