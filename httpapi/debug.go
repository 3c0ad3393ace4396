package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kata-containers/kata-monitor/sources/sandbox"
)

const pprofPrefix = "/debug/pprof/"

// Streaming profiles get their requested duration plus this much slack.
const (
	profileSlack   = 30 * time.Second
	maxProfileSecs = 3600
)

// isDebugPath reports whether path belongs to the /debug/ proxy route; which
// of its paths are allowed is decided by allowedDebugPath.
func isDebugPath(path string) bool {
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

// serveDebug proxies an allowed debug path of the sandbox's shim.
func (a *API) serveDebug(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if !allowedDebugPath(path) {
		a.badRequest(w, http.StatusNotFound, reasonBadDebugPath, "unknown debug path")
		return
	}
	q, ok := a.parseQuery(w, r)
	if !ok {
		return
	}
	sb, ok := a.sandboxFromQuery(w, q)
	if !ok {
		return
	}
	if d := debugDeadline(path, q.Get("seconds")); d > 0 {
		setWriteDeadline(w, d)
	}
	a.deps.Shims.Shim(sb.Socket).ServeDebug(w, r, path)
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

// serveAgentURL answers the shim's agent URL as text.
func (a *API) serveAgentURL(w http.ResponseWriter, r *http.Request) {
	q, ok := a.parseQuery(w, r)
	if !ok {
		return
	}
	sb, ok := a.sandboxFromQuery(w, q)
	if !ok {
		return
	}
	u, err := a.deps.Shims.Shim(sb.Socket).AgentURL(r.Context())
	if err != nil {
		a.logger.Warn("shim agent url", sandbox.LogKey, sb.ID, "err", err)
		writeText(w, http.StatusBadGateway, "shim agent url unavailable\n")
		return
	}
	writeText(w, http.StatusOK, u+"\n")
}
