package forwarder

import (
	"time"

	"github.com/kata-containers/kata-monitor/forwarder/exposition"
	"github.com/kata-containers/kata-monitor/forwarder/scrape"
)

// SandboxStatus is the outcome of the last scrape of one sandbox.
type SandboxStatus = scrape.Status

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
