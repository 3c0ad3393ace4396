package forwarder

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// TestPullSandboxesChangingExpositions: sandboxes whose expositions differ
// and change every round (series appear, vanish and reorder; one family of
// thousands of series; two sandboxes often serve the same series set,
// whose pull lines then share a Shape, eb2ebea) each get exactly their own
// lines in every pull: every value under a sandbox_id is that sandbox's
// value for that series in that round, and no series is missing or extra.
func TestPullSandboxesChangingExpositions(t *testing.T) {
	r := newRig(t, withConfig(func(c *Config) { c.ScrapeInterval, c.ScrapeTimeout = 15*time.Second, 15*time.Second }))
	ids := []string{"aaa", "bbb", "ccc", "ddd"}
	r.sbs.set(ids...)
	rng := rand.New(rand.NewPCG(6, 6))
	fams := []struct{ name, typ string }{{"g_a", "gauge"}, {"c_b_total", "counter"}, {"g_c", "gauge"}, {"big", "gauge"}}
	// Rounds cycle through three kinds: 0, the first three sandboxes
	// serve the same series (different values), so their lines share a
	// Shape; 1, every sandbox has the same families and line counts (the
	// same runs) but its own series; 2, families, counts and series at
	// random.
	body := func(id string, round int) (string, map[string]float64) {
		want := map[string]float64{}
		var b strings.Builder
		kind := round % 3
		if id == "ddd" && kind == 0 {
			kind = 2
		}
		for fi, f := range fams {
			if kind == 2 && rng.IntN(4) == 0 {
				continue // the family is absent this round
			}
			fmt.Fprintf(&b, "# TYPE %s %s\n", f.name, f.typ)
			n := 3 + fi
			if f.name == "big" {
				n = 3000
			}
			if kind == 2 {
				n = 1 + rng.IntN(5)
				if f.name == "big" {
					n = 3000 + rng.IntN(100)
				}
			}
			ks := rng.Perm(n + 40)[:n]
			for i := range n {
				k := ks[i]
				if kind == 0 {
					k = i
				}
				key := fmt.Sprintf(`%s{k="%d"}`, f.name, k)
				v := float64(rng.IntN(1_000_000))
				want[key] = v
				fmt.Fprintf(&b, "%s %g\n", key, v)
			}
		}
		return b.String(), want
	}
	for round := range 12 {
		want := map[string]map[string]float64{}
		for _, id := range ids {
			s, w := body(id, round)
			r.scraper.set(id, s)
			want[id] = w
		}
		r.clock.Add(15 * time.Second)
		var out bytes.Buffer
		require.NoError(t, r.f.WriteMetrics(context.Background(), &out, nil))
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(strings.NewReader(out.String()))
		require.NoError(t, err)
		got := map[string]map[string]float64{}
		for name, mf := range mfs {
			if !strings.HasPrefix(name, "g_") && !strings.HasPrefix(name, "c_") && name != "big" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var sb, k string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "sandbox_id":
						sb = l.GetValue()
					case "k":
						k = l.GetValue()
					}
				}
				if got[sb] == nil {
					got[sb] = map[string]float64{}
				}
				v := m.GetGauge().GetValue()
				if mf.GetType().String() == "COUNTER" {
					v = m.GetCounter().GetValue()
				}
				got[sb][fmt.Sprintf(`%s{k="%s"}`, name, k)] = v
			}
		}
		for _, id := range ids {
			if !equalMaps(want[id], got[id]) {
				t.Fatalf("round %d sandbox %s: %s", round, id, diffMaps(want[id], got[id]))
			}
		}
		require.Len(t, got, len(ids), "round %d: lines under an unknown sandbox_id", round)
	}
}

func equalMaps(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func diffMaps(want, got map[string]float64) string {
	var d []string
	for k, v := range want {
		if w, ok := got[k]; !ok {
			d = append(d, "missing "+k)
		} else if w != v {
			d = append(d, fmt.Sprintf("%s: want %g got %g", k, v, w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "extra "+k)
		}
	}
	sort.Strings(d)
	if len(d) > 10 {
		d = append(d[:10], fmt.Sprintf("... %d more", len(d)-10))
	}
	return strings.Join(d, "; ")
}
