package scrapecache

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/sources/cri"
)

// roundResult is what one Parse produced, rendered so that two sandboxes
// with their own Envs compare equal when they did the same.
type roundResult struct {
	stats   Stats
	err     string
	pull    string
	samples []string
	live    int
	// evicted is the series TakeEvicted handed over after the round
	// (sorted), with the push round that last sent them: the staleness
	// markers the push phase would add.
	evicted []string
}

func parseRound(t testing.TB, s *Sandbox, env *Env, body []byte, ct string, round uint64) roundResult {
	out := exposition.NewLines(exposition.LinesSize{})
	out.Labels = s.Labels()
	// The parser may append a newline to body: give each sandbox its copy.
	stats, err := s.Parse(env, bytes.Clone(body), ct, round, true, out)
	res := roundResult{stats: stats, live: s.Live()}
	if err != nil {
		res.err = err.Error()
	}
	snap := &exposition.Snapshot{Out: []*exposition.Lines{out}}
	snap.Merge()
	var w strings.Builder
	if err := snap.Write(&w, nil, model.NoEscaping); err != nil {
		t.Fatal(err)
	}
	res.pull = w.String()
	for _, smp := range s.Samples() {
		e := s.Entry(smp.Entry)
		var ls []labels.Label
		if e.Tmpl != nil {
			ls = e.Tmpl.AppendTo(nil, s.Values())
		}
		ts := "-"
		if smp.TS >= 0 {
			ts = fmt.Sprint(s.Timestamp(smp.TS))
		}
		res.samples = append(res.samples, fmt.Sprintf("%v %x %s", ls, math.Float64bits(smp.Value), ts))
	}
	s.TakeEvicted(func(g Gone) {
		res.evicted = append(res.evicted, fmt.Sprintf("%v sent %d", g.Tmpl.AppendTo(nil, g.Vals), g.Sent))
	})
	slices.Sort(res.evicted)
	return res
}

func newPair() (fast, full *Sandbox, fastEnv, fullEnv *Env) {
	ext := []labels.Label{{Name: "node", Value: "n1"}}
	fastEnv, fullEnv = NewEnv(true, nil, ext), NewEnv(true, nil, ext)
	fullEnv.noReplay = true
	fast, full = New("sb"), New("sb")
	pod := cri.Pod{UID: "u", Name: "n", Namespace: "ns"}
	fast.SetPod(pod)
	full.SetPod(pod)
	return fast, full, fastEnv, fullEnv
}

// compareRounds parses bodies in turn into a sandbox that may replay and
// one that always runs the full parser, and fails at the first round
// whose results differ. It returns which rounds were replayed.
func compareRounds(t testing.TB, ct string, bodies ...[]byte) []bool {
	fast, full, fastEnv, fullEnv := newPair()
	var replayed []bool
	for i, b := range bodies {
		round := uint64(i + 1)
		got := parseRound(t, fast, fastEnv, b, ct, round)
		want := parseRound(t, full, fullEnv, b, ct, round)
		for _, sb := range []*Sandbox{fast, full} { // as the push phase does
			for _, smp := range sb.Samples() {
				sb.Entry(smp.Entry).Sent = uint32(round)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d (replayed %v) of %q:\nreplay: %+v\nfull:   %+v", round, fast.replayed, b, got, want)
		}
		replayed = append(replayed, fast.replayed)
	}
	return replayed
}

func TestReplay(t *testing.T) {
	const base = "# HELP a A help.\n# TYPE a counter\na_total{x=\"1\"} 1\na_total{x=\"2\"} 2 1000\n# a comment\n\n" +
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\nu NaN\n"
	tests := []struct {
		name   string
		next   string
		replay bool
	}{
		{"same bytes", base, true},
		{"new values and timestamp", strings.NewReplacer("} 1\n", "} 1.5e3\n", "2 1000", "-Inf 2000", "u NaN", "u +Inf").Replace(base), true},
		{"negative count under histogram (invalid_for_type)", strings.Replace(base, "h_count 2", "h_count -2", 1), true},
		{"a tab before the value", strings.Replace(base, "h_sum 3", "h_sum\t3", 1), false},
		{"trailing blank", strings.Replace(base, "h_sum 3", "h_sum 3 ", 1), false},
		{"value textparse refuses (p)", strings.Replace(base, "h_sum 3", "h_sum 0x1p3", 1), false},
		{"value out of range", strings.Replace(base, "h_sum 3", "h_sum 1e999", 1), false},
		{"timestamp out of range", strings.Replace(base, "2 1000", "2 99999999999999999999", 1), false},
		{"a new series", base + "v 1\n", false},
		{"a series gone", strings.Replace(base, "h_sum 3\n", "", 1), false},
		{"help changed", strings.Replace(base, "A help.", "A help!", 1), false},
		{"no final newline", strings.TrimSuffix(base, "\n"), false},
		{"a syntax error", strings.Replace(base, "h_sum 3", "h_sum{ 3", 1), false},
		{"a duplicate", base + "u 7\n", false},
		{"integer values, 15 and 16 digits", strings.NewReplacer("h_sum 3", "h_sum 999999999999999", "h_count 2", "h_count 9007199254740993").Replace(base), true},
		{"integer with leading zeros", strings.Replace(base, "h_sum 3", "h_sum 000000000000000000012", 1), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// base twice records and replays; then next; then base again.
			got := compareRounds(t, "", []byte(base), []byte(base), []byte(tc.next), []byte(base))
			if want := []bool{false, true, tc.replay}; fmt.Sprint(got[:3]) != fmt.Sprint(want) {
				t.Errorf("replayed %v, want %v", got[:3], want)
			}
		})
	}
}

func TestReplayNotForOpenMetrics(t *testing.T) {
	body := []byte("# TYPE a gauge\na 1\n# EOF\n")
	got := compareRounds(t, "application/openmetrics-text; version=1.0.0", body, body)
	if got[1] {
		t.Error("OpenMetrics replayed")
	}
}

func TestReplaySharedExposition(t *testing.T) {
	body := sharedExposition(t)
	next := bytes.ReplaceAll(body, []byte(" 0\n"), []byte(" 42\n"))
	got := compareRounds(t, "", body, body, next)
	if !got[1] || !got[2] {
		t.Errorf("replayed %v", got)
	}
}

// FuzzReplay: the replay path gives what the full parser gives, round
// after round, for an exposition and mutations of it (values rewritten
// by the fuzzer's edits, and whatever else the fuzzer changes).
func FuzzReplay(f *testing.F) {
	f.Add([]byte("# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\na 2 123\n"), []byte{3, '7', 9, 'N'})
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"), []byte{1, '-', 200, 'e'})
	f.Add([]byte("a{b=\"\xff\"} 1\na 1\na 2\n{\"a.b\",\"c d\"=\"e\"} 1\n"), []byte{0, ' ', 5, '\t'})
	f.Add([]byte("# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 3\ns_count 2\ngo_x 1\n"), []byte{})
	f.Fuzz(func(t *testing.T, body, edits []byte) {
		next := bytes.Clone(body)
		// Each pair of edit bytes sets one byte of next, near the end of
		// a line (where values are) when the offset says so.
		for i := 0; i+1 < len(edits) && len(next) > 0; i += 2 {
			pos := int(edits[i]) % len(next)
			if nl := bytes.IndexByte(next[pos:], '\n'); nl > 0 && edits[i]&1 == 0 {
				pos += nl - 1
			}
			next[pos] = edits[i+1]
		}
		compareRounds(t, "", body, body, next, body, next)
	})
}

// TestReplayValueShapes: every value and timestamp shape the brief of
// issue 14's fast path names (signs, zeros, leading zeros, infinities,
// NaN, exponents, underscores, hex, 15/16/30 digits; timestamps with
// leading zeros, negative, overflowing) replays to what the full parser
// reads, or is left to it.
func TestReplayValueShapes(t *testing.T) {
	const base = "# TYPE g gauge\ng{x=\"1\"} 1\ng{x=\"2\"} 2 1000\n"
	values := []string{"-0", "+0", "0", "00", "+1", "-1", "1.0e3", "1e3", "1E3", "1e-3", "+Inf", "-Inf", "Inf", "inf", "+inf",
		"NaN", "nan", "1_000", "0x10", "0x1p3", "999999999999999", "1234567890123456", "9007199254740993",
		"123456789012345678901234567890", ".5", "5.", "1e", "--1", "1e400", "-1e400", "4.9e-324"}
	stamps := []string{"0", "0001", "-5", "99999999999999999999", "9223372036854775807", "1e3"}
	for _, v := range values {
		next := strings.Replace(base, "} 1\n", "} "+v+"\n", 1)
		compareRounds(t, "", []byte(base), []byte(base), []byte(next), []byte(base))
		for _, ts := range stamps {
			next := strings.Replace(base, "} 2 1000\n", "} "+v+" "+ts+"\n", 1)
			compareRounds(t, "", []byte(base), []byte(base), []byte(next), []byte(base))
		}
	}
}

// TestReplayEntriesOutOfOrder: a layout whose series steps are not the
// entries in order (a series spelled twice: the second spelling is the
// first's entry, a duplicate) keeps its idx and replays to what the full
// parser gives; in-order entries keep none (entryAt).
func TestReplayEntriesOutOfOrder(t *testing.T) {
	body := []byte("# TYPE a counter\na_total{x=\"1\",y=\"2\"} 1\nb 2\na_total{y=\"2\",x=\"1\"} 3\nc 4\n")
	next := bytes.ReplaceAll(body, []byte(" 4\n"), []byte(" 5\n"))
	if got := compareRounds(t, "", body, body, next); !got[1] || !got[2] {
		t.Errorf("replayed %v", got)
	}
	s, env := New("sb"), NewEnv(true, nil, nil)
	parseRound(t, s, env, body, "", 1)
	if s.layout == nil || fmt.Sprint(s.idx) != "[0 1 0 2]" {
		t.Errorf("layout %v, idx %v: want [0 1 0 2]", s.layout != nil, s.idx)
	}
	s = New("sb2")
	parseRound(t, s, env, []byte("a 1\nb 2\n"), "", 1)
	if s.layout == nil || s.idx != nil {
		t.Errorf("layout %v, idx %v: want none for entries in order", s.layout != nil, s.idx)
	}
}
