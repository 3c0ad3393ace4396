package sandboxes

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kata-containers/kata-monitor/httpapi/request"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
)

//go:embed templates/*.html
var templateFS embed.FS

// parsePages parses the HTML pages once. html/template escapes every value
// by context, unlike upstream, which pastes ids and pod names raw.
func parsePages() (*template.Template, error) {
	t, err := template.New("pages").Funcs(template.FuncMap{"sortHeader": sortHeader}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse html templates: %w", err)
	}
	return t, nil
}

// sandboxRow is one line of the /sandboxes page.
type sandboxRow struct {
	ID                string
	ShortID           string // display form; the full ID goes in a title
	HasPod            bool
	Namespace, Name   string
	HasStatus         bool
	Err               string
	Series            int
	Dropped           string // "type_conflict 6, duplicate 1": samples left out, by reason
	LastScrape        string
	Ago               string // "12s ago"; empty when never scraped
	Duration          time.Duration
	MetricsURL        string
	AgentURL          string
	VarsURL, PprofURL string
}

// sandboxesPage is the data of the /sandboxes template.
type sandboxesPage struct {
	Rows                   []sandboxRow
	Debug                  bool
	Now                    string
	Failing, NoPod, NoScan int    // rows whose last scrape failed, without pod metadata, never scraped
	Sort                   string // the sort key in force: id, namespace or pod
}

// Sort keys of the /sandboxes page (?sort=...), links in its column
// headers: no JavaScript needed.
const (
	sortNamespace = "namespace" // namespace, pod name, id (the default)
	sortPod       = "pod"       // pod name, namespace, id
	sortID        = "id"
)

// sortHeaderData is one sortable column header: a link to ?sort=Key.
type sortHeaderData struct {
	Key, Label string
	Current    bool
}

func sortHeader(current, key, label string) sortHeaderData {
	return sortHeaderData{Key: key, Label: label, Current: current == key}
}

// rowRank orders rows by state before the sort key: failing first (they
// need a look), then not yet scraped, then healthy.
func rowRank(r *sandboxRow) int {
	switch {
	case r.HasStatus && r.Err != "":
		return 0
	case !r.HasStatus:
		return 1
	}
	return 2
}

// sortRows sorts rows in place: failing first, then by key. Rows without
// pod metadata come after those with, within a state.
func sortRows(rows []sandboxRow, key string) {
	slices.SortStableFunc(rows, func(x, y sandboxRow) int {
		if c := rowRank(&x) - rowRank(&y); c != 0 {
			return c
		}
		if key != sortID && x.HasPod != y.HasPod {
			if x.HasPod {
				return -1
			}
			return 1
		}
		var c int
		switch key {
		case sortNamespace:
			c = cmpChain(x.Namespace, y.Namespace, x.Name, y.Name)
		case sortPod:
			c = cmpChain(x.Name, y.Name, x.Namespace, y.Namespace)
		}
		if c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
}

func cmpChain(a1, b1, a2, b2 string) int {
	if c := strings.Compare(a1, b1); c != 0 {
		return c
	}
	return strings.Compare(a2, b2)
}

// shortIDLen is how much of an id the page shows, as docker and crictl do.
const shortIDLen = 12

// List answers /sandboxes: the live sandboxes' ids one per line (upstream's
// answer), or an HTML table when the client accepts text/html (upstream's
// rule), sorted by ?sort=namespace (the default), pod or id, failing
// sandboxes first; 400 bad_query for another sort key.
func (h *Handlers) List(w http.ResponseWriter, r *http.Request) {
	list := h.deps.Sandboxes.List()
	slices.SortFunc(list, func(x, y sandbox.Sandbox) int { return strings.Compare(x.ID, y.ID) })
	if !wantsHTML(r) {
		var b strings.Builder
		for _, sb := range list {
			b.WriteString(sb.ID)
			b.WriteByte('\n')
		}
		request.WriteText(w, http.StatusOK, b.String())
		return
	}
	key := r.URL.Query().Get("sort")
	switch key {
	case "":
		key = sortNamespace
	case sortNamespace, sortPod, sortID:
	default:
		h.deps.Refuser.Refuse(w, http.StatusBadRequest, request.ReasonBadQuery, "sort: want id, namespace or pod")
		return
	}
	now := time.Now()
	page := sandboxesPage{Debug: h.debug, Now: now.UTC().Format(time.RFC3339), Sort: key}
	page.Rows = make([]sandboxRow, 0, len(list))
	for _, sb := range list {
		row := h.row(sb, now)
		switch {
		case !row.HasStatus:
			page.NoScan++
		case row.Err != "":
			page.Failing++
		}
		if !row.HasPod {
			page.NoPod++
		}
		page.Rows = append(page.Rows, row)
	}
	sortRows(page.Rows, key)
	h.renderHTML(w, "sandboxes.html", page)
}

// row gathers one sandbox's pod and status. The links are built with
// url.QueryEscape and handed to html/template as whole relative URLs, which
// it normalises without escaping the %XX twice.
func (h *Handlers) row(sb sandbox.Sandbox, now time.Time) sandboxRow {
	q := "?sandbox=" + url.QueryEscape(sb.ID)
	row := sandboxRow{
		ID:         sb.ID,
		ShortID:    shortID(sb.ID),
		MetricsURL: "/metrics" + q,
		AgentURL:   "/agent-url" + q,
		VarsURL:    "/debug/vars" + q,
		PprofURL:   pprofPrefix + q,
	}
	if h.deps.Pods != nil {
		if p, ok := h.deps.Pods.Lookup(sb.ID); ok {
			row.HasPod, row.Namespace, row.Name = true, p.Namespace, p.Name
		}
	}
	if h.deps.Status != nil {
		if st, ok := h.deps.Status.Status(sb.ID); ok {
			row.HasStatus, row.Err, row.Series = true, st.Err, st.Series
			row.Dropped = formatDropped(st.Dropped)
			row.LastScrape = "never"
			if !st.LastScrape.IsZero() {
				row.LastScrape = st.LastScrape.UTC().Format(time.RFC3339)
				row.Ago = ago(now.Sub(st.LastScrape))
			}
			row.Duration = st.Duration.Round(time.Millisecond)
		}
	}
	return row
}

// shortID cuts id to shortIDLen runes plus an ellipsis, on a rune boundary
// so an odd (non-hex) id still renders as valid UTF-8.
func shortID(id string) string {
	n := 0
	for i := range id {
		if n == shortIDLen {
			return id[:i] + "…"
		}
		n++
	}
	return id
}

// ago renders how long ago a scrape was, to the second: "4s ago",
// "3m05s ago", "2h10m ago", "3d04h ago". A negative age (the clock stepped
// back) reads "just now" rather than a confusing negative number.
func ago(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s <= 0:
		return "just now"
	case s < 60:
		return fmt.Sprintf("%ds ago", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds ago", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm ago", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh ago", s/86400, s%86400/3600)
}

// Index answers / : the small landing page listing the endpoints, HTML
// when the client accepts it, else text.
func (h *Handlers) Index(w http.ResponseWriter, r *http.Request) {
	if wantsHTML(r) {
		h.renderHTML(w, "index.html", map[string]any{"Debug": h.debug})
		return
	}
	var b strings.Builder
	b.WriteString("kata-monitor\n\n/metrics[?filter_family=PREFIX,...|?sandbox=ID]\n/metrics/self\n/sandboxes\n/agent-url?sandbox=ID\n")
	if h.debug {
		b.WriteString("/debug/vars?sandbox=ID\n/debug/pprof/?sandbox=ID\n")
	}
	b.WriteString("/healthz\n/readyz\n")
	request.WriteText(w, http.StatusOK, b.String())
}

// renderHTML renders into memory first so a template error is a clean 500,
// not half a page.
func (h *Handlers) renderHTML(w http.ResponseWriter, name string, data any) {
	var b strings.Builder
	if err := h.pages.ExecuteTemplate(&b, name, data); err != nil {
		h.deps.Logger.Error("render page", "page", name, "err", err)
		request.WriteText(w, http.StatusInternalServerError, "cannot render page\n")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(b.String()))
}

// wantsHTML: upstream's rule, an Accept header that mentions text/html.
func wantsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "text/html") {
			return true
		}
	}
	return false
}

// formatDropped renders the dropped-sample counts by reason, sorted.
func formatDropped(d map[string]int) string {
	reasons := make([]string, 0, len(d))
	for r := range d {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	var b strings.Builder
	for i, r := range reasons {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", r, d[r])
	}
	return b.String()
}
