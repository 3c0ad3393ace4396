// Package wal is the durable block queue behind each remote-write endpoint:
// blocks (opaque, ready-to-send payloads with the caller's format tag) are
// appended in order, survive
// restarts and crashes, are handed to one reader in order, and are deleted
// once acknowledged or when a disk budget forces it. It knows nothing of
// Kata or HTTP.
//
// # Directory layout
//
// One directory per queue (<wal.dir>/<endpoint name>/):
//
//	lock        flock(2)ed by the open Queue: one process (and one Queue) per directory
//	ack         the acknowledged position (below)
//	ack.tmp     transient, while the ack file is replaced
//	00000012    segment files, numbered contiguously, oldest first
//
// # Segments and records
//
// Segments are github.com/prometheus/prometheus/tsdb/wlog segment files:
// 32 KiB pages holding record fragments, each fragment with a 7-byte header
// (type, length, CRC32-Castagnoli of the fragment). A record never crosses
// into another segment unless it is larger than a segment. The queue never
// reopens a segment for writing: every Open starts a new one.
//
// Each block is one wlog record, all integers big-endian:
//
//	offset size
//	0      1    version (3)
//	1      8    seq          strictly increasing, never reused
//	9      8    group        seq of the first block of the same Append
//	17     4    samples      caller's sample count, for drop accounting
//	21     8    maxTimestamp caller's newest timestamp (ms)
//	29     8    minTimestamp caller's oldest timestamp (ms), for the age of
//	                         the oldest pending block (queue lag)
//	37     1    format       caller's encoding of data (opaque here)
//	38     n    data         opaque payload
//
// Version 2 (until 2026-11-30) is the same without format (data at offset
// 37) and reads back with format 0; version 1 (before 2026-11-30) also
// lacks minTimestamp (data at offset 29) and reads back with minTimestamp =
// maxTimestamp. Both are still read, so a WAL written by an older
// kata-monitor replays after an upgrade (remotewrite's
// TestUpgradeReplaysWALOfPreviousRelease replays one kept as test data).
// Version policy:
// a new field means a new version, appended after the existing ones;
// readers keep reading every older version; a record of an unknown
// (newer) version is counted as corrupt and skipped, never interpreted, so
// a downgrade loses the blocks written by the newer version and nothing
// else.
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
// # Ack file
//
// 25 bytes: magic "KMAK" | version (1) | acked seq uint64 | segment uint64 |
// CRC32-Castagnoli of the preceding 21 bytes. Every future version must also
// end with the CRC of all preceding bytes: a file whose CRC matches but
// whose version is unknown was written by a newer kata-monitor and Open
// refuses it (rather than guess and resend or lose data); a file whose CRC
// does not match is corrupt, counted, and the queue replays from the oldest
// segment (resend rather than lose). segment is the index of the segment
// that held the first unacked block when the file was written; it is
// informational, the index is always rebuilt by scanning. The file is
// replaced atomically: write ack.tmp, fsync, rename over ack, fsync the
// directory. Seq numbering continues after max(last seq on disk, acked seq).
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
// An Ack is fsynced before it returns; a power cut just before it makes the
// reader resend blocks (at-least-once delivery).
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
// Accounting is exact: over the life of a Queue,
//
//	pending at Open + samples appended =
//	    samples acked + samples dropped (all reasons) + samples pending
//
// where "appended" counts every block passed to Append (a failed write
// counts it both as appended and as dropped with reason "write_error").
//
// # Memory
//
// The newest blocks (up to MemoryBytes of payload) are also kept in memory,
// so a reader that keeps up never reads the disk; a reader that falls behind
// reads the segments sequentially.
package wal
