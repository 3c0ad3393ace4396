package scrapecache

import (
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
)

// interner hands out one shared copy of equal strings. The cached series of
// all sandboxes hold the same metric names, label names and shim label
// values (every shim exposes the same families), and the same raw series
// text as map keys; without sharing, each of the ~150k series at 200
// sandboxes carried its own copies (about 1 KiB per series).
//
// It is used only when a series is first seen, from the scrape goroutines
// concurrently, hence the mutex. Strings are never released one by one:
// reset (between rounds) drops the table when it grew well past what the
// live series can use, so churn of high-cardinality values cannot grow it
// without bound. Strings already handed out stay valid; only later equal
// strings stop sharing with them. A nil *interner copies every string.
type interner struct {
	mu    sync.Mutex
	m     map[string]string
	tmpls map[string]*Template          // push label templates (template.go)
	infos map[string]*exposition.Series // by head and name (entry.go)
}

func newInterner() *interner {
	return &interner{m: make(map[string]string), tmpls: make(map[string]*Template), infos: make(map[string]*exposition.Series)}
}

// str returns the shared copy of s, storing a copy of it if new.
func (in *interner) str(s string) string {
	if in == nil {
		return strings.Clone(s)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.m[s]; ok {
		return v
	}
	s = strings.Clone(s) // s may point into a parser's buffer
	in.m[s] = s
	return s
}

// bytes is str for a byte slice; a hit does not allocate.
func (in *interner) bytes(b []byte) string {
	if in == nil {
		return string(b)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.m[string(b)]; ok {
		return v
	}
	s := string(b)
	in.m[s] = s
	return s
}

// reset empties the table when it holds more than limit strings. Called
// between rounds, with the number of live series as a guide.
func (in *interner) reset(limit int) {
	if in == nil {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.m) > limit {
		in.m = make(map[string]string)
	}
	if len(in.tmpls) > limit {
		in.tmpls = make(map[string]*Template)
	}
	if len(in.infos) > limit {
		in.infos = make(map[string]*exposition.Series)
	}
}

// info returns the shared Series of the series named name (as exposed)
// whose pull head is head, building it from ls if new. canon is the
// canonical head (shimSpelling), "" when head is canonical. A hit does not
// allocate.
func (in *interner) info(name, outName string, head []byte, canon string, ls labels.Labels) *exposition.Series {
	// The key is the head (it holds outName and the labels) then the
	// exposed name, which differs from outName only for renamed families.
	n := len(head)
	key := append(head, name...)
	if in == nil {
		return exposition.NewSeries(strings.Clone(name), strings.Clone(outName), string(key), n, canon, ls)
	}
	in.mu.Lock()
	if v, ok := in.infos[string(key)]; ok {
		in.mu.Unlock()
		return v
	}
	in.mu.Unlock()
	k := string(key)
	v := exposition.NewSeries(in.str(name), in.str(outName), k, n, canon, ls)
	in.mu.Lock()
	defer in.mu.Unlock()
	if old, ok := in.infos[k]; ok {
		return old
	}
	in.infos[k] = v
	return v
}
