// Package forwarder is the scrape scheduler of kata-monitor: it scrapes every
// live sandbox's shim with bounded concurrency and a per-shim timeout, parses
// the expositions, renames the shims' own Go client families, enriches every
// series with sandbox and pod labels, and hands the result to two consumers:
//
//   - pull: WriteMetrics renders the latest round as one merged text
//     exposition (format 0.0.4). Values are formatted while parsing and each
//     series' head (`name{shim labels,`) is rendered once for all sandboxes,
//     so serving a request only concatenates bytes: head, the sandbox's
//     labels, value. A round thus holds ~20 bytes per line, not the ~190 of
//     a finished line. Concurrent requests share one round and a recent
//     round is reused, so pulling never multiplies load on shims.
//     While Run runs, a round up to twice snapshot_max_age old is served at
//     once and a single background round replaces it (stale-while-revalidate):
//     a pull request waits for shims only when no recent round exists, e.g.
//     the first request after start or after a long idle time. View hands the
//     snapshot itself to the HTTP layer, which streams it and caches one gzip
//     compression per snapshot (its round number identifies it).
//     Pull lines are rendered only while somebody pulls: before the first
//     WriteMetrics or View call, and when none came for max(10 minutes, 4
//     scrape intervals), scheduled rounds render none and keep no spare
//     pull buffers, which saves the pull part of the memory and CPU in
//     push-only deployments (live heap at 200 sandboxes 44 -> 39 MiB). The
//     first pull then runs a pull round, as when the snapshot is too old,
//     and scheduled rounds render again.
//   - push: Run scrapes on a fixed schedule and converts each round into
//     remote-write series (metric relabelling, external labels, staleness
//     markers for series that vanished) for every configured Appender. A
//     sample whose timestamp does not advance its series is never handed
//     over (forwarder/push/timestamps.go: counted per reason, logged once per series), so
//     one shim with frozen or backwards timestamps costs no other sample.
//     After each scheduled round kata-monitor's own metrics (Deps.Self)
//     follow, with the external labels and their own staleness markers
//     (forwarder/push), so a node nobody scrapes is observable from the
//     receiver alone.
//
// The data path is built around a per-sandbox scrape cache keyed by the
// raw series text of the exposition (forwarder/scrapecache): a shim exposes
// the same series every round with new values, so label parsing, escaping,
// relabelling and hashing happen once per series, not once per sample. The
// stages are packages, imported one way from here: forwarder/scrape scrapes
// and parses the sandboxes of a round (bounded concurrency, timeouts,
// pooled buffers, failures judged), forwarder/exposition renders the pull
// side (merge across sandboxes, text writer, escaping) and forwarder/push
// builds the push side (series, staleness markers, timestamp rules, own
// metrics). This package schedules rounds, shares them between pull
// callers, keeps the snapshots and hands the push series to the appenders.
package forwarder
