// Package remotewrite pushes samples to Prometheus remote-write receivers
// (Prometheus, Mimir, Thanos, VictoriaMetrics), one Queue per endpoint. It
// knows nothing of Kata: it receives one []prompb.TimeSeries per scrape
// round.
//
// # Data flow
//
// Append (called by the forwarder once per round) applies the endpoint's
// write_relabel_configs, cuts the round into blocks of at most
// max_samples_per_send samples without ever splitting a series, encodes
// each block as a remote-write 1.0 request (prompb.WriteRequest, gogo
// protobuf, snappy) and appends all of them to the endpoint's WAL
// (package wal) in one call: one group. Append touches only the local disk,
// so a dead receiver never slows scraping; the WAL absorbs it, up to
// wal.max_size.
//
// Run reads one group at a time, sends its blocks concurrently (at most
// max_shards requests; the blocks of a group hold disjoint series) and
// acknowledges the group once every block is done. Groups are sequential,
// so the samples of a series reach the receiver in timestamp order even
// while retrying.
//
// # Retry
//
// Network errors, 5xx, 429 (unless retry_on_http_429 is false) and
// unexpected 3xx retry forever with exponential backoff (min_backoff
// doubling to max_backoff, 10% jitter), or after the receiver's
// Retry-After (seconds or HTTP date, capped at 10*max_backoff). Other 4xx
// answers drop the block: its samples are counted in
// samples_dropped_total{reason="http_4xx"} and the receiver's answer is
// logged (at most once a minute, with the count of suppressed lines).
//
// # Shutdown and delivery guarantees
//
// When Run's context ends no new group starts, requests in flight get up
// to the flush deadline (5s by default) to finish, the leading blocks that
// finished are acknowledged, and the WAL is closed. Everything else stays
// in the WAL and is sent after the next start: delivery is at-least-once
// (a block sent but not yet acknowledged at a crash is sent again, which
// receivers accept as a duplicate), never out of order.
//
// # Compatibility notes
//
// queue_config.min_shards and batch_send_deadline are accepted so that
// Prometheus configs paste unchanged, and have no effect: blocks are cut
// per round, and concurrency is always up to max_shards. capacity sizes
// the WAL's in-memory tail. Metadata (HELP, TYPE, unit) from
// AppendMetadata is sent every metadata_config.send_interval outside the
// WAL, best effort.
package remotewrite
