// Package sandboxes serves kata-monitor's pages and the endpoints that reach
// one shim by sandbox id, compatible with upstream kata-monitor: the landing
// page (/), /sandboxes (ids as text, or an HTML table with pod metadata and
// each sandbox's last scrape), /agent-url and the /debug/* proxy to a
// shim. The sandbox parameter is resolved by httpapi/request: only a
// Sandbox of the live set (its Socket) reaches a shim. httpapi routes,
// limits and instruments these handlers; this package imports only
// httpapi/request and sources.
package sandboxes

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/kata-containers/kata-monitor/httpapi/request"
	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
)

// Sandboxes is the live set of sandboxes. Implementations must be safe for
// concurrent use; List's result is owned by the caller.
type Sandboxes interface {
	// List returns every live sandbox, in any order.
	List() []sandbox.Sandbox
	// Get returns the live sandbox with this id; false if there is none.
	Get(id string) (sandbox.Sandbox, bool)
}

// Pods maps a sandbox id to its CRI metadata. Lookup must not block for long:
// it is called once per row of the /sandboxes page.
type Pods interface {
	// Lookup returns the pod of sandbox id; false while it is unknown.
	Lookup(id string) (cri.Pod, bool)
}

// Shim is a client of one shim's monitor socket (sources/shim.Client).
type Shim interface {
	// Scrape appends the shim's exposition to dst[:0] and returns it,
	// decoded, with the Content-Type the shim sent ("" when none).
	Scrape(ctx context.Context, dst []byte) ([]byte, string, error)
	// AgentURL returns the shim's agent URL.
	AgentURL(ctx context.Context) (string, error)
	// ServeDebug proxies one debug path (already validated here; the client
	// validates it again) and writes the whole response itself.
	ServeDebug(w http.ResponseWriter, r *http.Request, path string)
}

// Shims hands out the client for a socket path taken from the live set.
type Shims interface {
	// Shim returns the (possibly shared) client of socket. Safe for
	// concurrent use.
	Shim(socket string) Shim
}

// Status is the outcome of the last scrape of one sandbox.
type Status struct {
	LastScrape time.Time     // when the scrape started; zero if never
	Duration   time.Duration // how long it took
	Err        string        // why it failed; empty on success
	Series     int           // series it yielded
	// Dropped counts the samples of that scrape left out, by reason
	// (forwarder.SandboxStatus.Dropped); nil when none.
	Dropped map[string]int
}

// StatusSource reports the last scrape of a sandbox, for the /sandboxes page.
type StatusSource interface {
	// Status returns sandbox id's last scrape; false if never scraped.
	Status(id string) (Status, bool)
}

// Deps are the handlers' collaborators. Sandboxes, Shims, Refuser and
// Logger are required; Pods and Status may be nil (no pod columns, no
// scrape status column).
type Deps struct {
	Sandboxes Sandboxes
	Pods      Pods
	Shims     Shims
	Status    StatusSource
	Refuser   *request.Refuser
	Logger    *slog.Logger
}

// Handlers are the pages and the shim endpoints. Safe for concurrent use.
type Handlers struct {
	deps  Deps
	debug bool
	pages *template.Template
}

// New parses the page templates and returns the handlers. debug says
// whether the /debug/* proxy is served (the pages then link to it).
func New(debug bool, deps Deps) (*Handlers, error) {
	if deps.Sandboxes == nil || deps.Shims == nil || deps.Refuser == nil || deps.Logger == nil {
		return nil, errors.New("sandboxes: Sandboxes, Shims, Refuser and Logger are required")
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	return &Handlers{deps: deps, debug: debug, pages: pages}, nil
}
