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
// The ack file holds each stream's acknowledged position, fsynced (package
// disk). An Ack of a plain queue writes it before it returns. Under
// Config.AckInterval (tenant streams) an Ack writes every stream's
// position to the fast ack file instead (ack.fast: one pwrite of a
// checksummed record in place, no fsync, no rename), and the ack file is
// written, for every stream at once, by a timer at most AckInterval later,
// by Close, and by a Next when the fast write failed. A round's acks so
// cost no fsync (issue 16), while each bound holds with its own file:
//
//   - SIGKILL or a crash of the process (the page cache survives): every
//     acknowledged position is on file, so each stream resends at most the
//     group it was sending and had not acknowledged (at most
//     queue_config.max_shards requests). That group is the newest the
//     receiver has of its series, so it takes its samples as exact
//     duplicates; a group resent behind newer samples would be refused as
//     out of order by a receiver without an out-of-order window
//     (Prometheus, Mimir by default) and counted dropped although it was
//     delivered.
//   - Power cut: a plain queue's ack file is fsynced at every Ack (the same
//     bound as a SIGKILL). A tenant stream resends in addition the groups
//     it acknowledged since the timer's last write (at most about
//     AckInterval of them), which such a receiver may refuse as out of
//     order: counted, never a loss. The fast record may come back torn,
//     empty, stale or intact: one failing its checksum is ignored, and an
//     intact one states positions that were true when written.
//
// Open takes per stream the newer of the two files' positions, the fast
// record counting only if it was written over the ack file found (it
// names that file's checksum): one outlived by a clean Close, or by a
// release that ignores ack.fast (and may have reused the seqs it names
// since), is ignored. When the fast record adds to the ack file, Open
// first writes the merged positions to the ack file (fsynced), then
// truncates ack.fast. A segment is deleted only once the fsynced ack file
// covers all its blocks, never on the fast file's word, so after a power
// cut every block the restored ack file does not cover is still on disk.
// A release from before ack.fast ignores the file: after a SIGKILL it
// resends, per tenant, what was acknowledged since the last ack file
// write as well. Only while neither file can be written (a full disk:
// logged, and tried again before each send) can a restart resend more
// (at-least-once delivery).
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
