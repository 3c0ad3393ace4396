// Package wal is the durable block queue behind each remote-write endpoint:
// blocks (opaque, ready-to-send payloads with the caller's format tag) are
// appended in order, survive
// restarts and crashes, are handed to one reader in order, and are deleted
// once acknowledged or when a disk budget forces it. It knows nothing of
// Kata or HTTP.
//
// # Tenants
//
// An endpoint with tenant routing has one Queue for all its tenants
// (Config.Tenants) and one Stream per tenant: AppendGroups writes every
// tenant's groups of a round in one wlog write and one fsync, each block
// tagged with its tenant, and each Stream reads, acknowledges and counts
// its own blocks only, so a tenant held back by its receiver holds back no
// other. The ack file keeps each tenant's position (package disk). A
// segment file is deleted once every tenant's blocks in it are
// acknowledged (as the ack file says); the disk budget deletes the oldest
// segment whoever's blocks it holds, counting each tenant's unsent blocks
// as that tenant's drops. Everything below holds per stream; a plain
// queue is the one-stream case (tenant "").
//
// # Files
//
// The queue directory's files (segments of block records, the ack file)
// and their formats, with the record version policy, are described in
// package disk, which also reads them.
//
// # What a block holds
//
// remotewrite stores requests ready to send (encoded and compressed once,
// at append), not protocol-neutral records encoded at send time: the
// sender's work per sample is then the encoder's and nothing more, the WAL
// holds the bytes the wire will carry (2.0 and zstd shrink the disk budget's
// use too), and a block goes out as written. The price is paid only when a
// receiver refuses remote write 2.0: remotewrite then decodes the queued
// 2.0 blocks and encodes them as 1.0 when it sends them, once, for the
// backlog at that moment. The format byte says how to read a block, so a
// config change (message, compression) never makes old blocks unreadable.
//
// # Fsync policy and what a power cut loses
//
// Every Append is one wlog write that reaches the page cache before Append
// returns, so a crash of the process loses nothing.
//
//   - "append" (default): the active segment is fsynced at the end of every
//     Append (and the directory when a segment was started), so a power cut
//     loses nothing whose Append returned nil.
//   - "segment": a segment is fsynced only when it is closed (cut, Close), so
//     a power cut can lose the unsynced tail of the active segment, up to one
//     segment of data. The next Open finds a torn tail and keeps what is intact.
//
// # Acknowledgements and what a crash resends
//
// The ack file holds each stream's acknowledged position. A stream's Next
// writes it, if it lacks the stream's latest position, before it returns
// blocks: the position a send earned is on disk (in the page cache, and
// fsynced) before the stream's next send. An Ack of a plain queue writes
// it at once; under Config.AckInterval (tenant streams) Ack only takes the
// position in memory, and the file, with every stream's position, is
// written by the first stream's next Next, by Stream.Close, by Close, or
// by a timer at most AckInterval later. In steady state that is one write
// (two fsyncs) per round for all tenants.
//
// So a crash, a SIGKILL or a power cut alike, makes each stream resend at
// most the group it was sending or had just acknowledged (one group: at
// most queue_config.max_shards requests), never a group that a newer one
// of the same stream followed. A resent group is the newest the receiver
// has of its series, so it takes the samples as exact duplicates; a group
// resent behind newer samples would be refused as out of order by a
// receiver without an out-of-order window (Prometheus, Mimir by default)
// and counted dropped although it was delivered. Only while the ack file
// cannot be written (a full disk: logged, and tried again before each
// send) can a restart resend more (at-least-once delivery).
//
// # Recovery
//
// Open scans every segment with its own reader, so corruption in segment k
// (a torn tail, flipped bytes) costs only the rest of segment k: it is logged
// once, counted in kata_monitor_wal_corruptions_total, and reading continues
// with segment k+1. wlog's Repair (which deletes everything after the
// corruption) is never used. Undecodable records and records whose seq does
// not increase are skipped and counted. A corrupt ack file means replay from
// the oldest segment. Open fails only on I/O errors, a locked directory or an
// ack file of an unknown version. Blocks the queue indexed but later cannot
// read back are counted as dropped with reason "corrupt".
//
// # Disk budget
//
// After every Append, while the segments total more than MaxSize bytes and
// more than one segment exists, the oldest segment is deleted, acked or not.
// The active segment is never deleted; when it alone is over budget it is
// cut first. Blocks in a deleted segment that Next has not handed out are
// counted as dropped (reason "disk_budget", blocks and samples); blocks
// handed out but not yet acked belong to the reader and are not counted. The
// reader continues with the next existing block: a gap, never a reordering.
//
// Accounting is exact, per stream: over the life of a Queue,
//
//	pending at Open + samples appended =
//	    samples acked + samples dropped (all reasons) + samples pending
//
// where "appended" counts every block passed to Append (a failed write
// counts it both as appended and as dropped with reason "write_error", the
// latter once its records are gone from disk, so that the next Open cannot
// find and send them too; see AppendGroups), and blocks handed out but not
// acked when the queue closes, whose segment the disk budget deleted, are
// counted dropped ("disk_budget") by Close.
//
// # Memory
//
// By default the queue keeps no copy of the blocks in memory: every reader
// reads the segments sequentially through a cursor it keeps open, also on
// the active segment, which it follows up to the bytes of the last
// completed write (never a half-written record). A reader that keeps up
// reads what was just written, which the kernel serves from the page
// cache, and gets its own copy of each block; the queue encodes records
// into a buffer it reuses and hands them to wlog about 256 KiB at a time.
// With MemoryBytes (or Queue.Stream's memoryBytes) the newest blocks, up
// to that much payload per stream, are also kept in memory, so a reader
// that keeps up never reads them back: worth it when many tenant streams
// share the queue, as each stream's cursor otherwise reads every tenant's
// records.
package wal
