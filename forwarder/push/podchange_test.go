package push

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/sources/cri"
)

// TestPodChangeMarkersKeepOldLabels: when a sandbox's pod changes, the
// staleness markers of its old series carry the old pod's labels, and a
// shim label whose value happened to equal an old pod value (a template
// slot) keeps that value, in the markers and in the new series (where it
// no longer equals a pod value); a second sandbox sharing the templates is
// not affected.
func TestPodChangeMarkersKeepOldLabels(t *testing.T) {
	env := scrapecache.NewEnv(true, nil, nil)
	a, b := scrapecache.New("sba"), scrapecache.New("sbb")
	a.SetPod(cri.Pod{UID: "u1", Name: "web", Namespace: "ns"})
	b.SetPod(cri.Pod{UID: "u2", Name: "db", Namespace: "ns"})
	bodies := map[*scrapecache.Sandbox]string{a: "m{app=\"web\",id=\"sba\"} 1\n", b: "m{app=\"db\",id=\"sbb\"} 1\n"}
	pb := NewBuilder(false, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	round := func(r uint64) (live, stale []string) {
		for _, sb := range []*scrapecache.Sandbox{a, b} {
			if _, err := sb.Parse(env, []byte(bodies[sb]), "", r, true, exposition.NewMeta()); err != nil {
				t.Fatal(err)
			}
			pb.Release(sb)
		}
		pb.Build([]*scrapecache.Sandbox{a, b}, int64(r)*1000, func(ss []series.Series) {
			for i := range ss {
				ls := labels.New(ss[i].AppendLabels(nil)...).String()
				if value.IsStaleNaN(ss[i].Samples[0].Value) {
					stale = append(stale, ls)
				} else {
					live = append(live, ls)
				}
			}
		})
		slices.Sort(live)
		slices.Sort(stale)
		return live, stale
	}
	live, stale := round(1)
	want := []string{
		`{__name__="m", app="db", cri_name="db", cri_namespace="ns", cri_uid="u2", id="sbb", sandbox_id="sbb"}`,
		`{__name__="m", app="web", cri_name="web", cri_namespace="ns", cri_uid="u1", id="sba", sandbox_id="sba"}`,
	}
	if !slices.Equal(live, want) || len(stale) != 0 {
		t.Fatalf("round 1: live %q stale %q, want %q", live, stale, want)
	}
	a.SetPod(cri.Pod{UID: "u3", Name: "api", Namespace: "ns2"})
	live, stale = round(2)
	want = []string{
		`{__name__="m", app="db", cri_name="db", cri_namespace="ns", cri_uid="u2", id="sbb", sandbox_id="sbb"}`,
		`{__name__="m", app="web", cri_name="api", cri_namespace="ns2", cri_uid="u3", id="sba", sandbox_id="sba"}`,
	}
	wantStale := []string{`{__name__="m", app="web", cri_name="web", cri_namespace="ns", cri_uid="u1", id="sba", sandbox_id="sba"}`}
	if !slices.Equal(live, want) || !slices.Equal(stale, wantStale) {
		t.Fatalf("round 2: live %q\nstale %q\nwant live %q\nstale %q", live, stale, want, wantStale)
	}
}
