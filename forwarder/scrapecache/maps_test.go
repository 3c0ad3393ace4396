package scrapecache

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
)

// TestMapsDroppedAndRebuilt: a sandbox with a layout keeps no lookup maps
// (steady-state rounds replay without them), and the maps a full parse
// rebuilds from the layout are the ones the full parser had: every raw
// spelling finds its entry, so no series gets a new entry (which would
// lose its push state) when the exposition changes.
func TestMapsDroppedAndRebuilt(t *testing.T) {
	const base = "# TYPE a counter\na_total{x=\"1\"} 1\na_total{x=\"2\"} 2 1000\n# a comment\n\n" +
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n" +
		"bad{l=\"1\",l=\"2\"} 1\nu{x=\"1\",} 1\nu{x=\"1\"} 2\n"
	fast, full, fastEnv, fullEnv := newPair()
	for round, body := range []string{base, base} {
		parseRound(t, fast, fastEnv, []byte(body), "", uint64(round+1))
		parseRound(t, full, fullEnv, []byte(body), "", uint64(round+1))
	}
	if !fast.replayed || fast.byRaw != nil || fast.byInfo != nil {
		t.Fatalf("after a replay: replayed %v, byRaw %v, byInfo %v; want no maps", fast.replayed, fast.byRaw, fast.byInfo)
	}
	if full.byRaw == nil {
		t.Fatal("the full parser's sandbox (no layout) has no maps")
	}
	// Mark every entry as sent in push round 7: a new entry would not be.
	for i := range fast.entries {
		fast.entries[i].Sent = 7
	}
	before := slices.Clone(fast.entries)
	fast.ensureMaps()
	if got, want := slices.Sorted(maps.Keys(fast.byRaw)), slices.Sorted(maps.Keys(full.byRaw)); !slices.Equal(got, want) {
		t.Fatalf("rebuilt raw keys\n%q\nwant\n%q", got, want)
	}
	if len(fast.byInfo) != len(full.byInfo) {
		t.Fatalf("rebuilt %d canonical keys, want %d", len(fast.byInfo), len(full.byInfo))
	}
	fast.dropMaps()

	next := strings.Replace(base, "h_sum 3\n", "h_sum 3\nnew 1\n", 1)
	parseRound(t, fast, fastEnv, []byte(next), "", 3)
	if fast.replayed {
		t.Fatal("a new series replayed")
	}
	for i, e := range before {
		if got := fast.entries[i]; got.Info != e.Info || got.Sent != 7 {
			t.Errorf("entry %d: %+v after the full parse, was %+v", i, got, e)
		}
	}
	if n := len(fast.entries); n != len(before)+1 {
		t.Errorf("%d entries, want %d (one new series)", n, len(before)+1)
	}
	if fast.byRaw != nil {
		t.Error("maps kept after the full parse recorded a layout")
	}
}

// TestSlicesFitted: per-series slices are right-sized after a full parse
// (appending by doubling leaves up to half unused), and a mass
// eviction's list is not kept once handed out.
func TestSlicesFitted(t *testing.T) {
	var body strings.Builder
	for i := range 1100 { // 1100 entries grow to 1280+ by appending
		body.WriteString("a{i=\"" + strconv.Itoa(i) + "\"} 1\n")
	}
	env := NewEnv(true, nil, nil)
	s := New("sb")
	parseRound(t, s, env, []byte(body.String()), "", 1)
	if s.defs != nil || s.defIdx != nil {
		t.Errorf("the round's family list (%d) or index (%d) kept after the parse", cap(s.defs), len(s.defIdx))
	}
	if s.layout == nil || s.idx != nil {
		t.Errorf("layout recorded %v, idx of %d entries kept: want a layout and no idx (its entries are in order)", s.layout != nil, len(s.idx))
	}
	for name, c := range map[string][2]int{
		"entries": {len(s.entries), cap(s.entries)},
		"samples": {len(s.samples), cap(s.samples)},
	} {
		if c[0] != 1100 || c[1] > c[0]+c[0]/8+16 {
			t.Errorf("%s: len %d cap %d, want 1100 and a fitting capacity", name, c[0], c[1])
		}
	}
	s.EvictAll()
	n := 0
	s.TakeEvicted(func(Gone) { n++ })
	if n != 1100 || cap(s.evicted) != 0 {
		t.Errorf("evicted %d series, list capacity kept %d", n, cap(s.evicted))
	}
}

// TestFamiliesShared: sandboxes whose rounds give the same families share
// one copy in their pull lines, kept across rounds; a sandbox whose
// families differ gets its own.
func TestFamiliesShared(t *testing.T) {
	env := NewEnv(true, nil, nil)
	body := sharedExposition(t)
	other := bytes.Replace(body, []byte("# HELP kata_hypervisor_fds "), []byte("# HELP kata_hypervisor_fds Other. "), 1)
	a, b, c := New("a"), New("b"), New("c")
	var got [3][]*exposition.Families
	for round := uint64(1); round <= 3; round++ {
		for i, tc := range []struct {
			s    *Sandbox
			body []byte
		}{{a, body}, {b, body}, {c, other}} {
			out := exposition.NewLines(exposition.LinesSize{})
			if _, err := tc.s.Parse(env, bytes.Clone(tc.body), "", round, false, out); err != nil {
				t.Fatal(err)
			}
			got[i] = append(got[i], out.Families)
		}
	}
	for r := range 3 {
		if got[0][r] != got[1][r] || got[0][r] != got[0][0] {
			t.Errorf("round %d: equal families not shared", r+1)
		}
		if got[2][r] == got[0][r] || got[2][r] != got[2][0] {
			t.Errorf("round %d: the other help text shares a set, or its set changed", r+1)
		}
	}
}

// TestSamplesReleased: the push samples are not held by the sandbox once
// the push phase cleared them (only by a sync.Pool), and the next collect
// round gets them at the size the last one needed (no growth by doubling).
func TestSamplesReleased(t *testing.T) {
	var body strings.Builder
	for i := range 1100 {
		body.WriteString("a{i=\"" + strconv.Itoa(i) + "\"} 1 1000\n")
	}
	env := NewEnv(true, nil, nil)
	s := New("sb")
	for round := uint64(1); round <= 3; round++ {
		parseRound(t, s, env, []byte(body.String()), "", round)
		if len(s.samples) != 1100 || cap(s.samples) > 1100+1100/8+16 || len(s.tss) != 1100 {
			t.Fatalf("round %d: %d samples (cap %d), %d timestamps, want 1100 and a fitting capacity", round, len(s.samples), cap(s.samples), len(s.tss))
		}
		if round > 1 && cap(s.samples) != 1100 {
			t.Errorf("round %d: samples allocated with capacity %d, want the last round's 1100", round, cap(s.samples))
		}
		s.ClearSamples()
		if s.samples != nil || s.tss != nil {
			t.Fatalf("round %d: samples (cap %d) or timestamps (cap %d) held after ClearSamples", round, cap(s.samples), cap(s.tss))
		}
	}
}

// TestFamilyNamesShared: sandboxes share one record per family name (its
// exposed and renamed names) instead of each keeping its own, and Reset
// lets them go once they outnumber the bound.
func TestFamilyNamesShared(t *testing.T) {
	env := NewEnv(true, nil, nil)
	body := sharedExposition(t)
	for i := range 3 {
		s := New(fmt.Sprint("sb", i))
		for round := uint64(1); round <= 2; round++ {
			parseRound(t, s, env, body, "", round)
		}
	}
	n := env.nfamilies.Load()
	if n < 50 || n > 100 {
		t.Fatalf("%d family names for the shared exposition's families", n)
	}
	f, ok := env.families.Load("go_goroutines")
	if !ok || f.(*family).name != "kata_shim_go_goroutines" {
		t.Fatalf("go_goroutines: %v %v, want renamed kata_shim_go_goroutines", ok, f)
	}
	env.Reset(int(n))
	if env.nfamilies.Load() != n {
		t.Error("names dropped within the bound")
	}
	env.Reset(int(n) - 1)
	if env.nfamilies.Load() != 0 {
		t.Error("names kept past the bound")
	}
	if _, ok := env.families.Load("go_goroutines"); ok {
		t.Error("go_goroutines kept past the bound")
	}
}
