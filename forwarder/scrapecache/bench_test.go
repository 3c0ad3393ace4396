package scrapecache

import (
	"os"
	"testing"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/test/selfmetrics"
)

func sharedExposition(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../test/testdata/kata-shim-metrics.prom")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var cpuTime = selfmetrics.CPUTime

// BenchmarkParseShim is one sandbox's parse of the shared exposition in
// steady state (every series cached), for pull only and for pull and push,
// by the replay path (package layout) and by the full parser; push-relayout is
// a shim whose exposition changes shape every round (a series comes and
// goes): the full parser runs each round after rebuilding the lookup maps
// from the last layout (ensureMaps).
func BenchmarkParseShim(b *testing.B) {
	body := sharedExposition(b)
	for _, bc := range []struct {
		name                     string
		push, noReplay, relayout bool
	}{{"pull", false, false, false}, {"push", true, false, false}, {"pull-full", false, true, false}, {"push-full", true, true, false}, {"push-relayout", true, false, true}} {
		push := bc.push
		bodies := [][]byte{body}
		if bc.relayout {
			bodies = append(bodies, append(append([]byte(nil), body...), "kata_bench_extra 1\n"...))
		}
		b.Run(bc.name, func(b *testing.B) {
			env := NewEnv(push, nil, nil)
			env.noReplay = bc.noReplay
			s := New("0000000000000000000000000000000000000000000000000000000000000001")
			s.SetPod(cri.Pod{UID: "0b5c7c0e-5d1a-4a5e-9b1c-1f7e9d3a2c11", Name: "web-7d9f8c6b5-x2k4q", Namespace: "default"})
			out := exposition.NewLines(exposition.LinesSize{})
			buf := make([]byte, 0, len(body)+1)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			round := uint64(0)
			cpu0 := cpuTime()
			for b.Loop() {
				round++
				out.Reset()
				buf = append(buf[:0], bodies[round%uint64(len(bodies))]...)
				if _, err := s.Parse(env, buf, "", round, push, out); err != nil {
					b.Fatal(err)
				}
			}
			if s.Live() != 759 && !bc.relayout {
				b.Fatalf("parsed %d series", s.Live())
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/759, "cpu-ns/sample")
		})
	}
}
