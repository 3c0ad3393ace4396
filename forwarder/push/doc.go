// Package push turns the forwarder's scrape rounds into protocol-neutral
// remote-write series (remotewrite/series: labels, samples, family
// metadata), the push half of kata-monitor's data path:
//
//   - Builder converts a scheduled round of shim series from the
//     per-sandbox scrape caches (forwarder/scrapecache) into series in
//     chunks of at most Chunk, adds one staleness marker (the special NaN
//     of github.com/prometheus/prometheus/model/value) for every series
//     sent in the previous push round and gone in this one, applies the
//     timestamp rules (timestamps.go) before a sample is queued, and keeps
//     the family metadata every series carries.
//   - Self does the same for kata-monitor's own metrics (a
//     prometheus.Gatherer), with the external labels and their own
//     staleness markers, so a node nobody scrapes is observable from the
//     receiver alone.
//
// Neither knows of appenders, schedules or metrics: the forwarder hands
// the chunks to its appenders and adds the returned Counts to its
// self-metrics. Imports go one way: forwarder -> push -> scrapecache,
// exposition, remotewrite/series.
package push
