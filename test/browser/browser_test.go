// Package browser checks the /sandboxes page the way an operator sees it: the
// real kata-monitor binary on a simulated node, rendered by a real headless
// Chromium (Debian's chromium package), with a screenshot kept as a test
// artefact in test/artifacts/sandboxes.png. Without chromium on PATH the
// tests skip; `make deps` installs it.
package browser

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/daemon"
	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds the real binary once for every test, like test/e2e.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kmbrowser")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binary, err = daemon.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// artefact is where the screenshot is kept for humans (test/artifacts is
// gitignored).
const artefact = "../artifacts/sandboxes.png"

// pngMagic starts every PNG file.
var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// TestSandboxesPageInChromium renders /sandboxes for five sandboxes in the
// three states an operator must tell apart (healthy, shim failing, pod
// unknown to the CRI), checks the DOM Chromium built, follows links found in
// it, and takes a screenshot.
// Long because one Chromium run is checked for every state, then its links
// followed.
func TestSandboxesPageInChromium(t *testing.T) {
	b := newBrowser(t)
	node, err := fakenode.Start(sockets.Dir(t), 5, fakeshim.Options{})
	require.NoError(t, err)
	t.Cleanup(node.Close)
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = fakenode.ID(i)
	}
	failing, noPod := ids[3], ids[4]
	node.Shim(failing).SetStatus(500)
	node.CRI.RemovePod(noPod) // before kata-monitor starts: its cache never learns it

	m := startMonitor(t, node)
	// Pull mode scrapes on demand: a /metrics request runs the round whose
	// status the page shows. Poll until every sandbox has one.
	var page string
	require.Eventually(t, func() bool {
		m.get("/metrics")
		_, page = m.get("/sandboxes")
		return strings.Count(page, `class="badge ok"`) == 4 && strings.Contains(page, `class="badge bad"`) &&
			strings.Contains(page, fakenode.PodFor(0).Name)
	}, 30*time.Second, 200*time.Millisecond, "page never showed 4 ok + 1 failed sandboxes")

	dom := b.dumpDOM(m.url("/sandboxes"))
	t.Run("dom", func(t *testing.T) {
		require.Contains(t, dom, `<table id="sandboxes">`)
		assert.Contains(t, dom, `<strong id="sandbox-count">5</strong> sandboxes`)
		assert.Contains(t, dom, "1 failing")
		assert.Contains(t, dom, "1 without pod metadata")
		assert.Equal(t, 5, strings.Count(dom, "<tr>")-1, "one row per sandbox plus the header")
		for i, id := range ids {
			assert.Contains(t, dom, `title="`+id+`">`+id[:12]+`…</code>`, "sandbox %d: short id, full id in title", i)
			for _, link := range []string{"/metrics", "/agent-url", "/debug/vars", "/debug/pprof/"} {
				assert.Contains(t, dom, `href="`+link+`?sandbox=`+id+`"`, "sandbox %d", i)
			}
			if id == noPod {
				continue
			}
			pod := fakenode.PodFor(i)
			assert.Contains(t, dom, `<td class="ns">`+pod.Namespace+`</td><td class="pod">`+pod.Name+`</td>`, "sandbox %d", i)
		}
		assert.NotContains(t, dom, fakenode.PodFor(4).Name, "the CRI never knew this pod")
		assert.Regexp(t, `<span class="badge bad">failed</span> <span class="err">[^<]*500[^<]*</span>`, dom)
		assert.NotContains(t, dom, "<script")
	})

	// The failing sandbox is the first row whatever the order, so it is
	// never below the fold; the column headers sort by plain links the
	// browser follows (the page's Content-Security-Policy, default-src
	// 'none', would block any script anyway).
	t.Run("failing first, sortable by links", func(t *testing.T) {
		rows := func(dom string) []string {
			var got []string
			for _, m := range regexp.MustCompile(`<code class="id" title="([0-9a-f]+)">`).FindAllStringSubmatch(dom, -1) {
				got = append(got, m[1])
			}
			return got
		}
		healthy := []string{ids[0], ids[1], ids[2]} // pod-0000..2 in ns-0..2: one order by namespace and by pod
		want := append(append([]string{failing}, healthy...), noPod)
		assert.Equal(t, want, rows(dom), "default order: failing, then by namespace, no pod metadata last")
		byID := append(append([]string(nil), healthy...), noPod) // by id, pod metadata or not
		slices.Sort(byID)
		byID = append([]string{failing}, byID...)
		for _, h := range []struct {
			label, key string
			want       []string
		}{{"pod", "pod", want}, {"namespace", "namespace", want}, {"sandbox", "id", byID}} {
			link := regexp.MustCompile(`<a href="(/sandboxes\?sort=` + h.key + `)"[^>]*>` + h.label + `</a>`).FindStringSubmatch(dom)
			require.NotNil(t, link, "no %s header link in the DOM", h.label)
			sorted := b.dumpDOM(m.url(link[1]))
			assert.Equal(t, h.want, rows(sorted), "sorted by %s", h.key)
			assert.Contains(t, sorted, `<th aria-sort="ascending"><a href="/sandboxes?sort=`+h.key+`"`)
		}
	})

	t.Run("follow agent-url link", func(t *testing.T) {
		href := findHref(t, dom, "/agent-url", ids[0])
		got := b.dumpDOM(m.url(href))
		assert.Contains(t, got, "vsock://830455376:1024")
	})

	t.Run("follow metrics link", func(t *testing.T) {
		href := findHref(t, dom, "/metrics", ids[1])
		got := b.dumpDOM(m.url(href))
		assert.Contains(t, got, "# TYPE go_goroutines gauge", "one shim's exposition, unchanged")
		assert.NotContains(t, got, "kata_monitor_", "no kata-monitor self-metrics in one sandbox's exposition")
	})

	t.Run("screenshot", func(t *testing.T) {
		path, err := filepath.Abs(artefact)
		require.NoError(t, err)
		b.screenshot(m.url("/sandboxes"), path)
		png, err := os.ReadFile(path)
		require.NoError(t, err, "chromium wrote no screenshot")
		require.True(t, bytes.HasPrefix(png, pngMagic), "not a PNG")
		require.Greater(t, len(png), 10<<10, "a blank page compresses below 10 KB")
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	})
}

// findHref returns the href of the link to path for sandbox id, as it is in
// the DOM: the test follows what the page offers, not a URL it builds.
func findHref(t *testing.T, dom, path, id string) string {
	t.Helper()
	re := regexp.MustCompile(`href="(` + regexp.QuoteMeta(path) + `\?sandbox=` + regexp.QuoteMeta(id) + `)"`)
	m := re.FindStringSubmatch(dom)
	require.NotNil(t, m, "no link to %s for %s in the DOM", path, id)
	return m[1]
}
