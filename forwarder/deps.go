package forwarder

import (
	"context"
	"log/slog"
	"time"

	"github.com/kata-containers/kata-monitor/forwarder/scrape"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/sources/sandbox"
	"github.com/prometheus/client_golang/prometheus"
)

// Sandboxes is the live set of sandboxes (sources/sandbox implements it).
// List must be safe for concurrent use and must not block on I/O; the
// forwarder calls it once per round and does not modify the result.
type Sandboxes interface {
	List() []sandbox.Sandbox
}

// Pods maps sandbox ids to CRI metadata (sources/cri implements it). Lookup
// must never block: the forwarder calls it once per sandbox per round and
// treats a miss as "pod not known yet".
type Pods interface {
	Lookup(id string) (cri.Pod, bool)
}

// Scraper fetches one shim's exposition (sources/shim implements it); see
// scrape.Source for the contract.
type Scraper = scrape.Source

// Forgetter is optionally implemented by a Scraper that keeps per-socket
// state (sources/shim.Pool keeps a client with idle connections): the
// forwarder calls Forget with the socket of every sandbox that left the live
// set, after the round that noticed it. Forget must not block.
type Forgetter interface {
	Forget(socket string)
}

// Appender receives every scheduled round in push mode (remotewrite
// implements it), in order, in one or more calls of at most push.Chunk (16384) series (a
// series appears at most once per round, so no call reorders a series), as
// protocol-neutral series: labels (a shim series' as a series.Template
// shared by all sandboxes with the sandbox's series.Values), samples and
// the family's metadata (every series of a family shares one
// *series.Metadata; nil when the family is unknown, e.g. renamed by
// metric_relabel_configs). The series, their label slices and sample
// slices belong to the forwarder and are reused by the next call: Append must copy or encode what it needs before returning and
// must not modify them. The Metadata values are not modified after the
// call. An error is logged and counted by the forwarder; it never stops the
// schedule.
type Appender interface {
	Append(ctx context.Context, ss []series.Series) error
}

// Committer is optionally implemented by an Appender that gathers a
// round's chunks before writing them (remotewrite/tenant.Router cuts each
// tenant's share of the whole round into WAL groups). The forwarder calls
// Commit once after the last chunk of every scheduled round, its own
// metrics included, as Prometheus commits a storage.Appender after each
// scrape. For such an appender a nil from Append means the chunk is taken
// (copied), and a nil from Commit that the round is written. An error is
// logged and counted like Append's.
type Committer interface {
	Commit(ctx context.Context) error
}

// MetadataAppender is optionally implemented by an Appender. It receives the
// latest HELP/TYPE set (sorted by family name) after each scheduled round
// whose set changed, and at least every 10 rounds. The slice is not modified
// after the call and may be retained.
type MetadataAppender interface {
	AppendMetadata(md []series.Metadata)
}

// Deps are the forwarder's collaborators. Sandboxes, Pods, Scraper, Logger
// and Registerer are required. With no Appenders the forwarder is pull-only.
type Deps struct {
	Sandboxes  Sandboxes
	Pods       Pods
	Scraper    Scraper
	Appenders  []Appender
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Self gathers kata-monitor's own metrics (what /metrics/self serves),
	// pushed after every scheduled round when Config.PushSelfMetrics is
	// set; nil pushes none.
	Self prometheus.Gatherer
	// Now is the clock for round timestamps, snapshot age and the schedule;
	// nil means time.Now. Tests inject a fake clock.
	Now func() time.Time
}
