package sandboxes

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kata-containers/kata-monitor/httpapi/request"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
)

const pprofPrefix = "/debug/pprof/"

// Streaming profiles get their requested duration plus this much slack.
const (
	profileSlack   = 30 * time.Second
	maxProfileSecs = 3600
)

// IsDebugPath reports whether path belongs to the /debug/ proxy route (Debug
// answers it); which of its paths are allowed is decided by
// allowedDebugPath.
func IsDebugPath(path string) bool {
	return path == "/debug" || strings.HasPrefix(path, "/debug/")
}

// allowedDebugPath is the allow-list of paths proxied to a shim:
// /debug/vars, /debug/pprof/ and /debug/pprof/<name> with a plain name.
func allowedDebugPath(path string) bool {
	if path == "/debug/vars" || path == pprofPrefix {
		return true
	}
	name, ok := strings.CutPrefix(path, pprofPrefix)
	return ok && validPprofName(name)
}

// validPprofName: ^[a-zA-Z0-9_.-]+$ and not "." or "..".
func validPprofName(name string) bool {
	if name == "" || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Debug proxies an allowed debug path (/debug/vars, /debug/pprof/,
// /debug/pprof/<name>) of the shim of ?sandbox=ID; any other path is 404
// bad_debug_path. Profiles and traces get a write deadline of their
// seconds plus 30s.
func (h *Handlers) Debug(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if !allowedDebugPath(path) {
		h.deps.Refuser.Refuse(w, http.StatusNotFound, request.ReasonBadDebugPath, "unknown debug path")
		return
	}
	sb, q, ok := h.sandbox(w, r)
	if !ok {
		return
	}
	if d := debugDeadline(path, q.Get("seconds")); d > 0 {
		request.SetWriteDeadline(w, d)
	}
	h.deps.Shims.Shim(sb.Socket).ServeDebug(w, r, path)
}

// sandbox resolves ?sandbox=ID to a live sandbox, or answers the refusal
// and returns false.
func (h *Handlers) sandbox(w http.ResponseWriter, r *http.Request) (sandbox.Sandbox, url.Values, bool) {
	q, ok := h.deps.Refuser.Query(w, r)
	if !ok {
		return sandbox.Sandbox{}, nil, false
	}
	sb, ok := h.deps.Refuser.Sandbox(w, q, h.deps.Sandboxes)
	return sb, q, ok
}

// debugDeadline is how long a debug response may take: profile and trace
// stream for their "seconds" (pprof's defaults 30 and 1 when absent or
// malformed), plus slack. 0 for every other path: they keep the ordinary
// bound set before routing.
func debugDeadline(path, seconds string) time.Duration {
	var secs int
	switch path {
	case pprofPrefix + "profile":
		secs = 30
	case pprofPrefix + "trace":
		secs = 1
	default:
		return 0
	}
	if n, err := strconv.Atoi(seconds); err == nil && n > 0 {
		secs = min(n, maxProfileSecs)
	}
	return time.Duration(secs)*time.Second + profileSlack
}

// AgentURL answers the agent URL of the shim of ?sandbox=ID as text; 502
// when the shim does not answer.
func (h *Handlers) AgentURL(w http.ResponseWriter, r *http.Request) {
	sb, _, ok := h.sandbox(w, r)
	if !ok {
		return
	}
	u, err := h.deps.Shims.Shim(sb.Socket).AgentURL(r.Context())
	if err != nil {
		h.deps.Logger.Warn("shim agent url", sandbox.LogKey, sb.ID, "err", err)
		request.WriteText(w, http.StatusBadGateway, "shim agent url unavailable\n")
		return
	}
	request.WriteText(w, http.StatusOK, u+"\n")
}
