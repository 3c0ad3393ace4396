package fakeshim

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// isProfile reports whether name is a named pprof profile a Go shim serves.
func isProfile(name string) bool {
	switch name {
	case "allocs", "block", "goroutine", "heap", "mutex", "threadcreate":
		return true
	}
	return false
}

// cmdline is what the shim reports as its command line, NUL-separated as
// /debug/pprof/cmdline sends it.
const cmdline = "/usr/bin/containerd-shim-kata-v2\x00-namespace\x00k8s.io\x00-address\x00/run/containerd/containerd.sock"

// streamChunk is the interval between chunks of a streamed profile or trace.
const streamChunk = 250 * time.Millisecond

// routes builds the shim's handler. Unknown paths get 404.
func (s *Shim) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /agent-url", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(s.agentURL))
	})
	mux.HandleFunc("GET /debug/vars", serveVars)
	mux.HandleFunc("GET /debug/pprof/{name...}", servePprof(s.done))
	mux.HandleFunc("POST /debug/pprof/symbol", serveSymbol)
	return s.track(mux)
}

// serveMetrics answers /metrics according to the knobs.
func (s *Shim) serveMetrics(w http.ResponseWriter, r *http.Request) {
	n := s.scrapes.Add(1)
	accept := r.Header.Get("Accept")
	s.accept.Store(&accept)
	if !s.stall(w, r) {
		return
	}
	if code := int(s.status.Load()); code != 0 {
		http.Error(w, fmt.Sprintf("fake shim failure %d", code), code)
		return
	}
	body, release := s.metricsBody(n)
	defer release()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if s.gzip.Load() && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = zb.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
	}
	if h := s.headers.Load(); h != nil {
		for k, v := range *h {
			w.Header()[k] = v
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if s.cutOff.Load() {
		breakOff(w, body)
		return
	}
	_, _ = w.Write(body) // the client went away: nothing to do
}

// stall applies the latency and hang knobs; false when the request is
// over (the client left, or the shim closed and dropped the connection).
func (s *Shim) stall(w http.ResponseWriter, r *http.Request) bool {
	if d := time.Duration(s.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		case <-s.done:
			t.Stop()
			drop(w)
			return false
		}
	}
	if s.hang.Load() {
		select {
		case <-r.Context().Done():
		case <-s.done:
			drop(w)
		}
		return false
	}
	return true
}

// metricsBody is scrape n's exposition: the fixed body, else the body
// func's, else the template rendered into a pooled buffer that release
// returns.
func (s *Shim) metricsBody(n int64) (body []byte, release func()) {
	if b := s.body.Load(); b != nil {
		return *b, func() {}
	}
	if fn := s.bodyFn.Load(); fn != nil {
		return (*fn)(n), func() {}
	}
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = s.tmpl.render((*bp)[:0], n)
	return *bp, func() { s.bufs.Put(bp) }
}

// drop closes the connection without an answer, as a dying shim does.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil { // e.g. HTTP/2: abort the stream instead
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// breakOff writes half of body, makes sure it left, then drops the connection.
func breakOff(w http.ResponseWriter, body []byte) {
	rc := http.NewResponseController(w)
	_, _ = w.Write(body[:len(body)/2])
	_ = rc.Flush()
	drop(w)
}

// serveVars answers /debug/vars like expvar: cmdline and memstats.
func serveVars(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"cmdline": strings.Split(cmdline, "\x00"),
		"memstats": map[string]uint64{
			"Alloc": 9843216, "TotalAlloc": 3187452616, "Sys": 31850760,
			"Mallocs": 32700190, "Frees": 32641873, "HeapAlloc": 9843216,
			"NumGC": 1873,
		},
	})
}

// servePprof answers the /debug/pprof/ tree like net/http/pprof does.
func servePprof(done <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		switch {
		case name == "":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<html><head><title>/debug/pprof/</title></head><body>\n/debug/pprof/<br>\n")
			for _, p := range []string{"allocs", "block", "cmdline", "goroutine", "heap", "mutex", "profile", "threadcreate", "trace"} {
				fmt.Fprintf(w, "<a href=\"%s?debug=1\">%s</a><br>\n", p, p)
			}
			fmt.Fprint(w, "</body></html>\n")
		case name == "cmdline":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, cmdline)
		case name == "symbol":
			serveSymbol(w, r)
		case name == "profile":
			stream(w, r, done, 30)
		case name == "trace":
			stream(w, r, done, 1)
		case isProfile(name):
			w.Header().Set("Content-Type", "application/octet-stream")
			fmt.Fprintf(w, "fake %s profile\n", name)
		default:
			http.NotFound(w, r)
		}
	}
}

// serveSymbol answers /debug/pprof/symbol with the symbol count.
func serveSymbol(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "num_symbols: 1\n")
}

// stream sends a chunk every streamChunk for ?seconds=N (default def)
// seconds, starting at once, and stops early when the client leaves or the
// shim closes, like a CPU profile or trace being collected.
func stream(w http.ResponseWriter, r *http.Request, done <-chan struct{}, def int) {
	secs := def
	if v := r.URL.Query().Get("seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			http.Error(w, "bad seconds", http.StatusBadRequest)
			return
		}
		secs = n
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	rc := http.NewResponseController(w)
	end := time.NewTimer(time.Duration(secs) * time.Second)
	defer end.Stop()
	tick := time.NewTicker(streamChunk)
	defer tick.Stop()
	for i := 0; ; i++ {
		if _, err := fmt.Fprintf(w, "chunk %d\n", i); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-tick.C:
		case <-end.C:
			return
		case <-r.Context().Done():
			return
		case <-done:
			return
		}
	}
}
