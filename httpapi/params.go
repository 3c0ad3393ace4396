package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kata-containers/kata-monitor/sources/sandbox"
)

// maxSandboxIDBytes bounds a sandbox id; real ones are 64 hex characters.
const maxSandboxIDBytes = 256

// parseQuery parses the raw query strictly: a malformed escape is an error
// rather than a silently dropped pair (url.URL.Query drops it), so a garbled
// sandbox parameter cannot turn into "missing".
func (a *API) parseQuery(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		a.badRequest(w, http.StatusBadRequest, reasonBadQuery, "malformed query string")
		return nil, false
	}
	return q, true
}

// validSandboxID reports whether id may be looked up at all: bounded, valid
// UTF-8, printable, no path separator, NUL or "..". Unicode letters pass (and
// then simply are not found).
func validSandboxID(id string) bool {
	if id == "" || len(id) > maxSandboxIDBytes || !utf8.ValidString(id) {
		return false
	}
	if strings.Contains(id, "..") {
		return false
	}
	for _, c := range id {
		if c == '/' || c == '\\' || c == 0 || !unicode.IsPrint(c) {
			return false
		}
	}
	return true
}

// sandboxFromQuery resolves the sandbox parameter to a live sandbox or
// answers the error itself (400 missing/invalid, 404 unknown) and returns
// false. The returned Sandbox comes from the live set, never from the input.
func (a *API) sandboxFromQuery(w http.ResponseWriter, q url.Values) (sandbox.Sandbox, bool) {
	ids := q["sandbox"]
	switch {
	case len(ids) == 0 || (len(ids) == 1 && ids[0] == ""):
		a.badRequest(w, http.StatusBadRequest, reasonMissingSandbox, "missing sandbox parameter")
		return sandbox.Sandbox{}, false
	case len(ids) > 1:
		a.badRequest(w, http.StatusBadRequest, reasonInvalidSandbox, "more than one sandbox parameter")
		return sandbox.Sandbox{}, false
	case !validSandboxID(ids[0]):
		a.badRequest(w, http.StatusBadRequest, reasonInvalidSandbox, "invalid sandbox parameter")
		return sandbox.Sandbox{}, false
	}
	sb, ok := a.deps.Sandboxes.Get(ids[0])
	if !ok {
		a.badRequest(w, http.StatusNotFound, reasonUnknownSandbox, "sandbox not found")
		return sandbox.Sandbox{}, false
	}
	return sb, true
}

// familyPrefixes splits filter_family: a comma list, items trimmed, empty
// items ignored. Repeated parameters are joined, so ?filter_family=a&
// filter_family=b equals ?filter_family=a,b.
func familyPrefixes(q url.Values) []string {
	var out []string
	for _, v := range q["filter_family"] {
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}
