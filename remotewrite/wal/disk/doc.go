// Package disk is the on-disk format of one queue directory of package
// wal and the reading of it: the block records (Block, EncodeRecord,
// DecodeRecord) inside prometheus/tsdb/wlog segment files, the ack file
// (ReadAck, WriteAck) and the fast ack file (ReadFastAck, FastAckWriter,
// ReadAcks for what Open starts from), reading a segment in order (Cursor) and a
// read-only summary of a directory another process may own (Inspect,
// IsQueueDir). The queue itself (appending, handing out, acknowledging,
// the disk budget) is package wal; this package writes nothing but the
// ack files and keeps no state beyond a FastAckWriter's slots.
//
// # Directory layout
//
// One directory per queue (<wal.dir>/<endpoint name>/):
//
//	lock        flock(2)ed by the open Queue: one process (and one Queue) per directory
//	ack         the acknowledged position (below)
//	ack.tmp     transient, while the ack file is replaced
//	ack.fast    the fast ack file of a queue shared by tenants (below)
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
// Version 4 (from 2026-11-30) is a block with a tenant (a queue shared by
// an endpoint's tenants): version 3's header, then at offset 38 the
// tenant's length t (1 byte, 1 to 255) and the tenant (t bytes), then
// data at 39+t. A block without a tenant is still written as version 3,
// so a queue without tenants is read by the releases before version 4.
// group is then the seq of the first block of the same tenant's group in
// the same write: one write holds groups of several tenants.
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
// # Ack file
//
// 25 bytes: magic "KMAK" | version (1) | acked seq uint64 | segment uint64 |
// CRC32-Castagnoli of the preceding 21 bytes. Version 2 (a queue shared by
// tenants) adds, after segment, a tenant count uint32 and per tenant its
// length (1 byte), its name and its acked seq uint64, before the CRC of
// all preceding bytes: a block is done when its seq is at most the
// tenant's entry or at most acked seq (the floor: the lowest position of
// the tenants with blocks on disk; tenants not listed are at the floor).
// A queue whose tenants are all at the floor (a plain queue always)
// writes version 1. Every future version must also
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
// # Fast ack file
//
// ack.fast (from 2026-11-30; written by queues shared by tenants) holds
// records at offsets that are multiples of 4096, each: magic "KMAF" |
// version (1) | gen uint64 | base uint32 | length uint32 | an ack file's
// bytes (length, any ack file version) | CRC32-Castagnoli of all preceding
// bytes. It is written in place with one pwrite per record and never
// fsynced: it survives a killed process (the page cache does), not a
// power cut. gen grows with each record; two slots alternate (offset 0
// and a second one, moved past everything written when a record outgrows
// the first), so a write cut short never damages the newest intact
// record, which is the one with the highest gen. base is the CRC that
// ends the ack file the record adds to (AckSum; 0: there was none): a
// record counts only over that very ack file, and then per tenant the
// newer of the two positions holds (MergeAcks). A record that is torn,
// fails its CRC or is of an unknown version is ignored, never an error
// (what it held is resent). Releases before the file ignore it: they
// resend the acknowledgements it held beyond the ack file.
package disk
