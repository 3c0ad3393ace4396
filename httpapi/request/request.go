// Package request holds what every kata-monitor endpoint does with a
// request around its own work: the strict parse of the query, the sandbox
// parameter (validated, then looked up in the live set, so no path is ever
// built from request input), filter_family, refusals counted by reason on
// kata_monitor_http_bad_requests_total, plain-text answers and the
// per-response write deadline. httpapi and httpapi/sandboxes import it; it
// imports neither.
package request

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kata-containers/kata-monitor/sources/sandbox"
)

// Reasons of kata_monitor_http_bad_requests_total: a fixed set, so request
// input never becomes a label value.
const (
	ReasonMethod         = "method_not_allowed"
	ReasonQueryTooLong   = "query_too_long"
	ReasonBadQuery       = "bad_query"
	ReasonMissingSandbox = "missing_sandbox"
	ReasonInvalidSandbox = "invalid_sandbox"
	ReasonUnknownSandbox = "unknown_sandbox"
	ReasonBadDebugPath   = "bad_debug_path"
)

// Refuser answers refused requests and counts them by reason. Safe for
// concurrent use.
type Refuser struct {
	badRequests *prometheus.CounterVec
}

// NewRefuser registers kata_monitor_http_bad_requests_total on reg, every
// reason starting at 0 so a rate() sees the first one.
func NewRefuser(reg prometheus.Registerer) (*Refuser, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kata_monitor", Subsystem: "http", Name: "bad_requests_total",
		Help: "Requests refused before reaching a shim, by reason.",
	}, []string{"reason"})
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register http metrics: %w", err)
	}
	for _, r := range []string{
		ReasonMethod, ReasonQueryTooLong, ReasonBadQuery, ReasonMissingSandbox,
		ReasonInvalidSandbox, ReasonUnknownSandbox, ReasonBadDebugPath,
	} {
		c.WithLabelValues(r)
	}
	return &Refuser{badRequests: c}, nil
}

// Refuse answers code with a fixed message and counts reason (one of the
// Reason constants). The message never contains request input.
func (f *Refuser) Refuse(w http.ResponseWriter, code int, reason, msg string) {
	f.badRequests.WithLabelValues(reason).Inc()
	WriteText(w, code, msg+"\n")
}

// Query parses the raw query strictly: a malformed escape is refused (400
// bad_query) rather than silently dropped (url.URL.Query drops the pair),
// so a garbled sandbox parameter cannot turn into "missing". false: the
// answer is written.
func (f *Refuser) Query(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		f.Refuse(w, http.StatusBadRequest, ReasonBadQuery, "malformed query string")
		return nil, false
	}
	return q, true
}

// Live is the live set the sandbox parameter is looked up in
// (sources/sandbox.Watcher implements it). Get must be safe for concurrent
// use.
type Live interface {
	// Get returns the live sandbox with this id; false if there is none.
	Get(id string) (sandbox.Sandbox, bool)
}

// Sandbox resolves the sandbox parameter of q to a live sandbox, or answers
// the refusal itself (400 missing or invalid, 404 unknown) and returns
// false. The returned Sandbox comes from live, never from the input.
func (f *Refuser) Sandbox(w http.ResponseWriter, q url.Values, live Live) (sandbox.Sandbox, bool) {
	ids := q["sandbox"]
	switch {
	case len(ids) == 0 || (len(ids) == 1 && ids[0] == ""):
		f.Refuse(w, http.StatusBadRequest, ReasonMissingSandbox, "missing sandbox parameter")
		return sandbox.Sandbox{}, false
	case len(ids) > 1:
		f.Refuse(w, http.StatusBadRequest, ReasonInvalidSandbox, "more than one sandbox parameter")
		return sandbox.Sandbox{}, false
	case !ValidSandboxID(ids[0]):
		f.Refuse(w, http.StatusBadRequest, ReasonInvalidSandbox, "invalid sandbox parameter")
		return sandbox.Sandbox{}, false
	}
	sb, ok := live.Get(ids[0])
	if !ok {
		f.Refuse(w, http.StatusNotFound, ReasonUnknownSandbox, "sandbox not found")
		return sandbox.Sandbox{}, false
	}
	return sb, true
}

// maxSandboxIDBytes bounds a sandbox id; real ones are 64 hex characters.
const maxSandboxIDBytes = 256

// ValidSandboxID reports whether id may be looked up at all: at most 256
// bytes, valid UTF-8, printable, no path separator, NUL or "..". Unicode
// letters pass (and then simply are not found).
func ValidSandboxID(id string) bool {
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

// FamilyPrefixes splits filter_family (upstream kata-monitor's parameter): a
// comma list, items trimmed, empty items ignored. Repeated parameters are
// joined, so ?filter_family=a&filter_family=b equals ?filter_family=a,b.
func FamilyPrefixes(q url.Values) []string {
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

// WriteText answers a short plain-text body. The nosniff header keeps a
// browser from reading an echoed value as HTML.
func WriteText(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// SetWriteDeadline moves the connection's write deadline to now+d, overriding
// the server's WriteTimeout for this response only. The read deadline is
// left alone: net/http clears it once the request is read, and setting one
// would make its background read cancel the request context when it fires.
func SetWriteDeadline(w http.ResponseWriter, d time.Duration) {
	// ErrNotSupported (e.g. a recorder in tests) only loses the bound.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}
