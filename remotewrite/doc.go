// Package remotewrite pushes samples to Prometheus remote-write receivers
// (Prometheus, Mimir, Thanos, VictoriaMetrics), one Queue per endpoint. It
// knows nothing of Kata: it receives protocol-neutral series
// (remotewrite/series: labels, float samples, the family's metadata) and
// encodes them as remote write 1.0 (prometheus.WriteRequest) or 2.0
// (io.prometheus.write.v2.Request), snappy or zstd, as the endpoint's
// protobuf_message and compression say.
//
// # Packages
//
// Imports go one way, each package doing one thing:
//
//   - remotewrite (this package): Queue, one endpoint's lifecycle (New,
//     Append, Run, Close), its WAL, metadata requests, queue lag, stranded
//     queue directories;
//   - remotewrite/tenant: Router, one Queue per tenant for an endpoint
//     with a tenant block;
//   - remotewrite/send: the Sender that reads the WAL and delivers
//     requests (retries, splits, 2.0 fallback, rate cap) and the
//     endpoint's self-metrics;
//   - remotewrite/send/client: one request and what its answer means
//     (HTTP, authentication, status policy, refusal reasons);
//   - remotewrite/codec: 1.0 and 2.0 encoding and decoding, compression;
//   - remotewrite/config: the remote_write and wal blocks of the config
//     file (defaults, validation, the authenticated transport);
//   - remotewrite/wal: the durable queue of encoded blocks;
//   - remotewrite/series: the protocol-neutral series the forwarder
//     hands over.
//
// # Data flow
//
// Append (called by the forwarder once per chunk of a round, see "Chunks,
// groups and shards") applies the endpoint's write_relabel_configs, cuts
// the series into blocks of at most max_samples_per_send samples without
// ever splitting a series, encodes each block as one ready-to-send request
// (package codec) and appends all of them to the endpoint's WAL (package wal)
// in one call: one group. Each block's format (message and compression)
// is stored with it, so a block is sent as written whatever the config
// says after a restart. Append touches only the local disk, so a dead
// receiver never slows scraping; the WAL absorbs it, up to wal.max_size.
//
// Run (package send) reads one group at a time, sends its blocks concurrently (at most
// max_shards requests; the blocks of a group hold disjoint series) and
// acknowledges the group once every block is done. Groups are sequential,
// so the samples of a series reach the receiver in timestamp order even
// while retrying. queue_config.max_bytes_per_second, when set, is waited
// for before every attempt (a token bucket shared by the shards).
//
// # Chunks, groups and shards
//
// The forwarder hands a round over in chunks of at most 16,384 series
// (forwarder/push.Chunk: its buffers stay small), one Append each, so one
// round of 200 sandboxes (about 152,000 series of one sample) is about 10
// groups, each one WAL write (and one fsync with wal.fsync "append") and
// one acknowledgement once sent, of at most ceil(16384 /
// max_samples_per_send) blocks: 9 with the default 2,000. Since groups go
// out one after the other, at most that many requests are in flight, and
// at most max_shards (the default 8) at once. It is the contract, kept on
// purpose: a group is the unit of fsync, of acknowledgement and of
// ordering, and sending the next group before the previous one is done
// could reorder a series whose block of the previous group is being
// retried. Fewer, larger groups cost less CPU per sample (each group's
// fsyncs: docs/benchmarks.md, "Push cost, session 5"); catch-up at the
// defaults already runs at about 50 times the production rate, and a
// receiver gets fewer, larger requests.
//
// A tenant's queue (remotewrite/tenant) is fed through Stage instead: the
// router holds a tenant's series until they fill a block, Stage encodes
// them and keeps the compressed blocks, sealing a group each time 8,192
// series are staged, and after the round's last chunk WriteStaged writes
// every tenant's groups into the endpoint's shared WAL in one write (one
// fsync). A tenant's share of a round is so ceil(share/8192) groups of
// the same shape, however many tenants share each chunk.
//
// # Remote write 2.0
//
// With protobuf_message io.prometheus.write.v2.Request each request has
// its own symbols table and every series its family's type, help and unit
// (no metadata requests); the receiver's X-Prometheus-Remote-Write-*-Written
// headers are checked, and a 2xx that wrote fewer samples than sent is
// counted (samples_dropped_total{reason="receiver_partial_write"}). A
// receiver that does not read 2.0 (415; 2xx without Written headers, which
// is what 1.x receivers that ignore Content-Type answer; 400 before any
// 2.0 request was written) makes the endpoint fall back to 1.0 until the
// next start: queued 2.0 blocks are transcoded when sent, new rounds are
// written as 1.0, metadata requests resume (send's fallBack).
// docs/remote-write-2.md lists the specification's sender requirements
// with their tests.
//
// # Status policy
//
// Every answer maps to one action (StatusAction in remotewrite/send/client;
// the table is in docs/remote-write.md):
//
//   - 2xx: delivered.
//   - 400, 409, 422 (the data is refused): the request is split in two
//     halves by series and each half delivered in turn, recursively, so
//     only the series the receiver refuses on their own are dropped
//     (samples_dropped_total{reason="refused"}, the answer logged at most
//     once a minute). Prometheus answers 400 to a whole request for one
//     out-of-order or duplicate sample; k such series among n cost about
//     2*k*log2(n) extra requests. A block spends at most
//     8*(log2(n)+1) splits on refusals; past that a refused part is
//     dropped whole, so a receiver refusing everything costs a bounded
//     number of requests, not two per series.
//   - 413: the request is split and the endpoint's request size (gauge
//     max_samples_per_send) is lowered to half of it; later requests are
//     cut to that size before sending. Only a single series that is too
//     large alone is dropped (reason "too_large").
//   - 429 with retry_on_http_429 false: dropped (reason "http_429").
//   - Everything else (401, 403, 404, 407, 408, 425, other 4xx, 429, 5xx,
//     unexpected 3xx, no answer): retried forever with exponential backoff
//     (min_backoff doubling to max_backoff, 10% jitter), or after the
//     receiver's Retry-After (seconds or HTTP date, capped at
//     10*max_backoff). Credentials from files are re-read on every
//     request, so a 401 ends once the file is fixed and nothing is lost.
//     Failures are visible: requests_total{code}, samples_failed_total,
//     failing_since_timestamp_seconds (first failure of the current
//     streak, 0 after a success) and a log line at most once a minute.
//
// The halves of a split are sent one after the other inside the block's
// slot, so the group (and every later one) waits for them: splitting never
// reorders a series. A block's samples are counted as sent or dropped only
// once the whole block is done, so a shutdown in the middle of a split
// (the block is sent whole again after the next start) counts nothing
// twice.
//
// # Queue lag and stranded queues
//
// queue_lag_seconds is read from the WAL when collected: the age of the
// oldest sample neither sent nor dropped (0 only when nothing is pending),
// so it grows from the first round when the receiver was never reachable,
// and across restarts. ReportStranded, called once at start, reports every
// queue directory under wal.dir that no endpoint owns (read-only, no lock):
// setting an endpoint's name to the directory's name adopts it.
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
// WAL, best effort, in 1.0 metadata requests (2.0 carries it inline).
package remotewrite
