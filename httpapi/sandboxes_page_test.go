package httpapi

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/sources/cri"
)

// TestSandboxesPage renders one sandbox in each state an operator must tell
// apart: healthy, failing, not scraped yet, and unknown to the CRI.
// Long because each state's row is checked on the same rendered page.
func TestSandboxesPage(t *testing.T) {
	const (
		idFail  = "fa11fa11fa11fa11fa11"
		idNew   = "0000new"
		idNoPod = "abcdefabcdefabcdef"
	)
	recent := time.Now().Add(-90 * time.Second)
	env := newTestEnv(t, DefaultConfig(), func(d *Deps) {
		d.Sandboxes = newFakeSandboxes(idA, idFail, idNew, idNoPod)
		d.Pods = fakePods{
			idA:    {UID: "u1", Name: "web-7d9f", Namespace: "shop"},
			idFail: {UID: "u2", Name: "db-0", Namespace: "shop"},
			idNew:  {UID: "u3", Name: "batch", Namespace: "jobs"},
		}
		d.Status = fakeStatus{
			idA:    {LastScrape: recent, Duration: 12 * time.Millisecond, Series: 759},
			idFail: {LastScrape: recent, Duration: 5 * time.Second, Err: "context deadline exceeded"},
			idNoPod: {LastScrape: recent, Duration: 3 * time.Millisecond, Series: 10,
				Dropped: map[string]int{"type_conflict": 6, "duplicate": 1}},
		}
	})
	w := do(t, env.api.Handler(), http.MethodGet, "/sandboxes", acceptHTML)
	require.Equal(t, http.StatusOK, w.Code)
	body := w.Body.String()

	t.Run("summary", func(t *testing.T) {
		assert.Contains(t, body, `<strong id="sandbox-count">4</strong> sandboxes`)
		assert.Contains(t, body, "1 failing")
		assert.Contains(t, body, "1 without pod metadata")
		assert.Contains(t, body, "1 not scraped yet")
		assert.Regexp(t, `page generated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`, body)
	})
	t.Run("ids shortened with the full id in the title", func(t *testing.T) {
		assert.Contains(t, body, `<code class="id" title="`+idA+`">0f1e2d3c4b5a…</code>`)
		assert.Contains(t, body, `title="`+idFail+`">fa11fa11fa11…</code>`)
		assert.Contains(t, body, `title="`+idNew+`">`+idNew+`</code>`)
		assert.NotContains(t, body, ">"+idA+"<", "the full id is only in the title and the links")
	})
	t.Run("pods", func(t *testing.T) {
		assert.Contains(t, body, `<td class="ns">shop</td><td class="pod">web-7d9f</td>`)
		assert.Contains(t, body, `<td class="ns">shop</td><td class="pod">db-0</td>`)
		assert.Contains(t, body, `<td class="ns">jobs</td><td class="pod">batch</td>`)
		assert.Equal(t, 1, strings.Count(body, "unknown to the CRI"))
	})
	t.Run("scrape status", func(t *testing.T) {
		// The test runs well within 10s of building recent.
		assert.Regexp(t, regexp.MustCompile(`759 series<br>\d{4}-[0-9T:-]+Z <span class="muted">1m3[0-9]s ago, took 12ms</span>`), body)
		assert.Contains(t, body, `<span class="badge bad">failed</span> <span class="err">context deadline exceeded</span>`)
		assert.Contains(t, body, "took 5s")
		assert.Contains(t, body, `<span class="badge wait">pending</span>`)
		assert.Equal(t, 2, strings.Count(body, `<span class="badge ok">ok</span>`))
		assert.Contains(t, body, `10 series<br><span class="err" title="samples left out this scrape; see kata_monitor_series_dropped_total">left out: duplicate 1, type_conflict 6</span>`)
		assert.Equal(t, 1, strings.Count(body, "left out:"))
	})
	t.Run("links", func(t *testing.T) {
		for _, id := range []string{idA, idFail, idNew, idNoPod} {
			for _, link := range []string{"/metrics", "/agent-url", "/debug/vars", "/debug/pprof/"} {
				assert.Contains(t, body, `href="`+link+`?sandbox=`+id+`"`)
			}
		}
	})
	t.Run("no javascript", func(t *testing.T) {
		assert.NotContains(t, body, "<script")
		assert.NotContains(t, body, "onclick")
	})
	// Failing first, then not yet scraped, then healthy; within a state by
	// the key (rows without pod metadata last); the headers link the keys.
	order := func(body string) []string {
		re := regexp.MustCompile(`<code class="id" title="([^"]+)">`)
		var ids []string
		for _, m := range re.FindAllStringSubmatch(body, -1) {
			ids = append(ids, m[1])
		}
		return ids
	}
	t.Run("sorted failing first", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"", []string{idFail, idNew, idA, idNoPod}},
			{"?sort=namespace", []string{idFail, idNew, idA, idNoPod}},
			{"?sort=pod", []string{idFail, idNew, idA, idNoPod}},
			{"?sort=id", []string{idFail, idNew, idA, idNoPod}},
		} {
			w := do(t, env.api.Handler(), http.MethodGet, "/sandboxes"+tc.query, acceptHTML)
			require.Equal(t, http.StatusOK, w.Code, tc.query)
			assert.Equal(t, tc.want, order(w.Body.String()), tc.query)
		}
		assert.Contains(t, body, `<a href="/sandboxes?sort=id"`)
		assert.Contains(t, body, `<th aria-sort="ascending"><a href="/sandboxes?sort=namespace"`)
		assert.Contains(t, body, `<a href="/sandboxes?sort=pod"`)
		w := do(t, env.api.Handler(), http.MethodGet, "/sandboxes?sort=size", acceptHTML)
		assert.Equal(t, http.StatusBadRequest, w.Code)
		assert.Equal(t, "sort: want id, namespace or pod\n", w.Body.String())
	})
}

// TestSandboxesSortKeys: healthy pods in several namespaces, ordered by each
// key; the plain-text list stays in id order (upstream's).
func TestSandboxesSortKeys(t *testing.T) {
	pods := fakePods{
		"a1": {Name: "zeta", Namespace: "alpha"},
		"b2": {Name: "alpha", Namespace: "zulu"},
		"c3": {Name: "mid", Namespace: "alpha"},
		"d4": {Name: "alpha", Namespace: "beta"},
	}
	st := fakeStatus{}
	for id := range pods {
		st[id] = Status{LastScrape: time.Now(), Series: 1}
	}
	env := newTestEnv(t, DefaultConfig(), func(d *Deps) {
		d.Sandboxes = newFakeSandboxes("a1", "b2", "c3", "d4")
		d.Pods = pods
		d.Status = st
	})
	re := regexp.MustCompile(`<code class="id" title="([^"]+)">`)
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"namespace", []string{"c3", "a1", "d4", "b2"}}, // alpha/mid, alpha/zeta, beta/alpha, zulu/alpha
		{"pod", []string{"d4", "b2", "c3", "a1"}},       // alpha(beta), alpha(zulu), mid, zeta
		{"id", []string{"a1", "b2", "c3", "d4"}},
	} {
		w := do(t, env.api.Handler(), http.MethodGet, "/sandboxes?sort="+tc.key, acceptHTML)
		var got []string
		for _, m := range re.FindAllStringSubmatch(w.Body.String(), -1) {
			got = append(got, m[1])
		}
		assert.Equal(t, tc.want, got, tc.key)
		assert.Contains(t, w.Body.String(), `<th aria-sort="ascending"><a href="/sandboxes?sort=`+tc.key+`"`)
	}
	w := do(t, env.api.Handler(), http.MethodGet, "/sandboxes?sort=pod", nil)
	assert.Equal(t, "a1\nb2\nc3\nd4\n", w.Body.String())
}

func TestSandboxesPageEmptyAndSingular(t *testing.T) {
	tests := []struct {
		name string
		ids  []string
		want []string
	}{
		{"empty", nil, []string{`<strong id="sandbox-count">0</strong> sandboxes`, "No sandbox is running on this host."}},
		{"one", []string{"b2"}, []string{`<strong id="sandbox-count">1</strong> sandbox ·`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, DefaultConfig(), func(d *Deps) {
				d.Sandboxes = newFakeSandboxes(tt.ids...)
				d.Pods = fakePods{"b2": cri.Pod{Name: "p", Namespace: "n"}}
				d.Status = fakeStatus{}
			})
			body := do(t, env.api.Handler(), http.MethodGet, "/sandboxes", acceptHTML).Body.String()
			for _, s := range tt.want {
				assert.Contains(t, body, s)
			}
			if len(tt.ids) == 0 {
				assert.NotContains(t, body, "<table")
			} else {
				assert.Contains(t, body, "<table")
			}
		})
	}
}
