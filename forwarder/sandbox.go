package forwarder

import (
	"time"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
)

// SandboxStatus is the outcome of the last scrape of one sandbox.
type SandboxStatus struct {
	// LastScrape is when the scrape started (the forwarder's clock).
	LastScrape time.Time
	// Duration is how long the scrape took (transport only, not parsing).
	Duration time.Duration
	// Err is the scrape or parse error, empty on success.
	Err string
	// Series is the number of series kept from the exposition.
	Series int
	// Dropped counts the round's samples of this sandbox that were left
	// out, by reason (duplicate, invalid, invalid_for_type, type_conflict,
	// name_clash; see kata_monitor_series_dropped_total); nil when none.
	Dropped map[string]int
}

// sandboxState is everything the forwarder keeps about one sandbox across
// rounds: its scrape cache and the scheduling and status around it. During
// a round only the goroutine scraping that sandbox touches it; between
// rounds only the round's sequential phase does.
type sandboxState struct {
	cache  *scrapecache.Sandbox
	id     string
	socket string
	root   string // the sandbox root holding its directory
	jitter time.Duration
	round  uint64 // last round that listed this sandbox

	out     *exposition.Lines    // this round's pull lines
	outHint exposition.LinesSize // sizes of the previous round's out
	status  SandboxStatus

	failing, parseFailing bool                  // log once per streak
	scrapeErr             error                 // this round's scrape error, judged after the round
	drops                 exposition.DropCounts // this round's samples left out at parse
	dropLogged            uint16                // reasons already logged (bit per DropReason)
}

func newSandboxState(id string) *sandboxState {
	return &sandboxState{cache: scrapecache.New(id), id: id}
}

// snapshot is one finished round as served to pull requests: the merged
// pull lines plus the round's identity and statuses. It is immutable once
// published; readers are counted (under Forwarder.mu) so its lines are
// recycled only after the last reader is done.
type snapshot struct {
	exposition.Snapshot
	seq     uint64    // the round's number: unique per snapshot, increasing
	at      time.Time // round start: the time of the data
	done    time.Time // round end: the reference for snapshot_max_age
	ids     []string  // sandboxes of the round, sorted
	status  []SandboxStatus
	readers int
	retired bool
}
