package scrape

import (
	"time"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrapecache"
)

// Status is the outcome of the last scrape of one sandbox.
type Status struct {
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

// Target is everything kept about one sandbox across rounds: its scrape
// cache and the scheduling and status around it. During a round only the
// goroutine scraping that sandbox touches it; between rounds only the
// round's sequential phase does. The exported fields are the caller's to
// set before a round (Socket, Root, Round, Out) and to read after it.
type Target struct {
	Cache  *scrapecache.Sandbox
	ID     string
	Socket string
	Root   string        // the sandbox root holding its directory
	Jitter time.Duration // delay of its scrape in scheduled rounds
	Round  uint64        // last round that listed this sandbox

	Out     *exposition.Lines    // this round's pull lines
	OutHint exposition.LinesSize // sizes of the previous round's Out
	Status  Status               // this round's outcome

	failing, parseFailing bool                  // log once per streak
	scrapeErr             error                 // this round's scrape error, judged after the round
	drops                 exposition.DropCounts // this round's samples left out at parse
	dropLogged            uint16                // reasons already logged (bit per DropReason)
}

// NewTarget returns the state of sandbox id, its scheduled scrapes delayed
// by a jitter in [0, jitterMax) that is the same every round: one of
// jitterSlots multiples of jitterMax/jitterSlots.
func NewTarget(id string, jitterMax time.Duration) *Target {
	return &Target{Cache: scrapecache.New(id), ID: id, Jitter: jitterFor(id, jitterMax)}
}
