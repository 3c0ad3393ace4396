package scrapecache

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/sources/cri"
)

// FuzzSharedFamilySets: the merged pull exposition of sandboxes sharing
// one Env (their family sets and line shapes shared through its tables, a
// sandbox's last set and shape reused when equal), round after round, is the one sandboxes parsing
// the same bodies once, in a fresh Env, give: sandboxes serving the same
// or different families, HELP and TYPE, and changing them between rounds;
// with and without a family filter.
func FuzzSharedFamilySets(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{3, 3, 3, 1, 1, 1, 7, 0, 7, 0, 2})
	f.Fuzz(func(t *testing.T, plan []byte) {
		// Each byte picks the body of one sandbox (3 sandboxes a round).
		bodies := []string{
			"# HELP a A.\n# TYPE a counter\na_total 1\n# TYPE b gauge\nb 2\n",
			"# HELP a Other help.\n# TYPE a counter\na_total 3\n# TYPE b gauge\nb 4\n",
			"# TYPE a gauge\na 5\nb 6\n",
			"# HELP b B.\n# TYPE b gauge\nb 7\n# HELP c C.\n# TYPE c summary\nc{quantile=\"0.5\"} 1\nc_sum 2\nc_count 3\n",
			"",
			"# HELP a A.\n# TYPE a counter\n# TYPE b gauge\nb 2\n",
			"# HELP a A.\n# TYPE a counter\na_total 1\n# TYPE b gauge\nb 2\n# HELP d D.\n# TYPE d histogram\nd_bucket{le=\"+Inf\"} 1\nd_sum 1\nd_count 1\n",
			"a_total 9\n",
		}
		const n = 3
		env := NewEnv(false, nil, nil)
		sbs := make([]*Sandbox, n)
		for i := range sbs {
			sbs[i] = New(fmt.Sprint("sb", i))
			sbs[i].SetPod(cri.Pod{UID: "u", Name: fmt.Sprint("p", i), Namespace: "ns"})
		}
		merged := func(env *Env, sbs []*Sandbox, round uint64, picks []byte, prefixes []string) string {
			snap := &exposition.Snapshot{}
			for i, sb := range sbs {
				out := exposition.NewLines(exposition.LinesSize{})
				out.Labels = sb.Labels()
				body := []byte(bodies[int(picks[i])%len(bodies)])
				if _, err := sb.Parse(env, bytes.Clone(body), "", round, false, out); err != nil {
					out = exposition.NewLines(exposition.LinesSize{})
				}
				snap.Out = append(snap.Out, out)
			}
			snap.Merge()
			var w strings.Builder
			if err := snap.Write(&w, prefixes, model.NoEscaping); err != nil {
				t.Fatal(err)
			}
			return w.String()
		}
		for r := 0; (r+1)*n <= len(plan) && r < 20; r++ {
			picks := plan[r*n : (r+1)*n]
			for _, prefixes := range [][]string{nil, {"b"}} {
				got := merged(env, sbs, uint64(2*r+len(prefixes)+1), picks, prefixes)
				fresh := make([]*Sandbox, n)
				for i := range fresh {
					fresh[i] = New(fmt.Sprint("sb", i))
					fresh[i].SetPod(cri.Pod{UID: "u", Name: fmt.Sprint("p", i), Namespace: "ns"})
				}
				want := merged(NewEnv(false, nil, nil), fresh, 1, picks, prefixes)
				if got != want {
					t.Fatalf("round %d picks %v prefixes %v: shared\n%s\nfresh\n%s", r, picks, prefixes, got, want)
				}
			}
		}
	})
}

// TestSharedShapes: sandboxes serving the same structure share one Shape
// (series and runs of their pull lines) across sandboxes and rounds; a
// sandbox whose structure changes gets its own, and keeps it while it
// stays; a values-only change keeps the shared one. Without the sharing
// each Lines holds its own copy (8 bytes a line, 12 a run).
func TestSharedShapes(t *testing.T) {
	const a = "# HELP a A.\n# TYPE a counter\na_total{x=\"1\"} 1\na_total{x=\"2\"} 2\n# TYPE b gauge\nb 2\n"
	const a2 = "# HELP a A.\n# TYPE a counter\na_total{x=\"1\"} 10\na_total{x=\"2\"} 20.5\n# TYPE b gauge\nb 3 1700000000000\n"
	const other = "# TYPE b gauge\nb 2\n# HELP a A.\n# TYPE a counter\na_total{x=\"1\"} 1\n"
	env := NewEnv(false, nil, nil)
	sbs := make([]*Sandbox, 3)
	for i := range sbs {
		sbs[i] = New(fmt.Sprint("sb", i))
	}
	parse := func(round uint64, bodies ...string) []*exposition.Shape {
		var shapes []*exposition.Shape
		for i, sb := range sbs {
			out := exposition.NewLines(exposition.LinesSize{})
			_, err := sb.Parse(env, []byte(bodies[i]), "", round, false, out)
			require.NoError(t, err)
			require.NotNil(t, out.Shape(), "sandbox %d round %d", i, round)
			shapes = append(shapes, out.Shape())
		}
		return shapes
	}
	r1 := parse(1, a, a, a)
	require.Same(t, r1[0], r1[1])
	require.Same(t, r1[0], r1[2])
	r2 := parse(2, a, a2, other) // a replay, a values-only change, a new structure
	require.Same(t, r1[0], r2[0])
	require.Same(t, r1[0], r2[1])
	require.NotSame(t, r1[0], r2[2])
	r3 := parse(3, a, a, other)
	require.Same(t, r1[0], r3[1])
	require.Same(t, r2[2], r3[2])
	require.Equal(t, 2, env.shapes.Len())
}
