package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// Acknowledgements and crashes: a group acknowledged before the stream's
// next group was handed out must never come again, whatever the ack
// timer did (a receiver without an out-of-order window refuses a resent
// group that newer samples of its series followed).

// ackReader is one stream of a queue under test: the plain queue's or a
// tenant's.
type ackReader interface {
	Next(ctx context.Context, max int) ([]Block, error)
	Ack(seq uint64) error
}

// ackCase is a queue shape: plain (tenants nil) or shared by tenants.
type ackCase struct {
	name    string
	tenants []string
	every   time.Duration // Config.AckInterval
}

var ackCases = []ackCase{
	{"plain", nil, 0},
	// An hour: the timer never writes during the test; only Next does.
	{"tenants-ack-timer-1h", []string{"a", "b", "c"}, time.Hour},
	{"tenants-no-timer", []string{"a", "b", "c"}, 0},
}

// open opens the case's queue in dir and returns its readers by tenant
// ("" for the plain queue's).
func (c ackCase) open(t *testing.T, dir string) (*Queue, map[string]ackReader) {
	t.Helper()
	cfg := Config{Dir: dir, SegmentSize: 32 << 10, AckInterval: c.every}
	rs := map[string]ackReader{}
	if c.tenants == nil {
		q := openTest(t, cfg)
		rs[""] = q
		return q, rs
	}
	q, sts := openTenants(t, cfg, c.tenants...)
	for tn, st := range sts {
		rs[tn] = st
	}
	return q, rs
}

// names is the case's readers in a fixed order.
func (c ackCase) names() []string {
	if c.tenants == nil {
		return []string{""}
	}
	return c.tenants
}

// round appends one group of 2 blocks per reader, as one round.
func (c ackCase) round(t *testing.T, q *Queue) {
	t.Helper()
	if c.tenants == nil {
		appendN(t, q, 2, 500)
		return
	}
	appendRound(t, q, 2, 500, c.tenants...)
}

// nextNow is Next that must find a group at once.
func nextNow(t *testing.T, r ackReader) []Block {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bs, err := r.Next(ctx, 100)
	require.NoError(t, err)
	require.NotEmpty(t, bs)
	return bs
}

// TestAckPersistedBeforeNextSend: a backlog of 5 rounds; each reader sends
// (Next, Ack) k groups and is handed group k+1, then the process dies
// (the directory copied while the queue is open, as a SIGKILL leaves it).
// After a reopen each reader starts at group k+1: the k groups it
// acknowledged before taking a newer one do not come again. With the ack
// timer at an hour this fails unless Next or Ack writes the pending
// positions; the plain queue writes at every Ack. A second crash point,
// right after an Ack with no later hand-out, resends nothing acknowledged
// either: a tenant's Ack writes the fast ack file (before it did, that
// group came again).
func TestAckPersistedBeforeNextSend(t *testing.T) {
	for _, c := range ackCases {
		for k := 1; k <= 4; k++ {
			for _, handedOut := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/acked=%d/next-handed-out=%v", c.name, k, handedOut), func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "ep")
					q, rs := c.open(t, dir)
					for range 5 {
						c.round(t, q)
					}
					groups := map[string][][]Block{}
					for range k {
						for _, n := range c.names() {
							bs := nextNow(t, rs[n])
							groups[n] = append(groups[n], bs)
							require.NoError(t, rs[n].Ack(bs[len(bs)-1].Seq))
						}
					}
					if handedOut {
						for _, n := range c.names() {
							groups[n] = append(groups[n], nextNow(t, rs[n]))
						}
					}
					crashed := filepath.Join(t.TempDir(), "ep")
					copyLive(t, dir, crashed)
					require.NoError(t, q.Close())

					_, again := c.open(t, crashed)
					for _, n := range c.names() {
						first := nextNow(t, again[n])[0].Seq
						if handedOut {
							require.Equal(t, groups[n][k][0].Seq, first,
								"reader %q: starts at the group it was handed, not at one it acknowledged before (groups %v)", n, groupSeqs(groups[n]))
						} else {
							// The plain queue's Ack writes the ack file, a
							// tenant's the fast ack file.
							require.Greater(t, first, groups[n][k-1][len(groups[n][k-1])-1].Seq,
								"reader %q: no acknowledged group comes again (groups %v)", n, groupSeqs(groups[n]))
						}
					}
				})
			}
		}
	}
}

func groupSeqs(gs [][]Block) [][]uint64 {
	out := make([][]uint64, len(gs))
	for i, g := range gs {
		out[i] = seqs(g)
	}
	return out
}

// ackFileID identifies the ack file's current version: each write renames
// a new file over it.
func ackFileID(t *testing.T, dir string) uint64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, disk.AckFileName))
	if os.IsNotExist(err) {
		return 0
	}
	require.NoError(t, err)
	return fi.Sys().(*syscall.Stat_t).Ino
}

// onDiskAcks is what an Open of dir would start from: the ack file with
// the fast ack file's newest record merged in when it adds to that file.
func onDiskAcks(t *testing.T, dir string) disk.AckState {
	t.Helper()
	a, err := disk.ReadAcks(dir)
	if !errors.Is(err, disk.ErrAckNotFound) {
		require.NoError(t, err)
	}
	return a
}

// TestTenantsAckWritesNoFsync: in steady state (each round appended, then
// every tenant sends and acknowledges its group) no Ack and no Next writes
// the ack file (two fsyncs; the timer, here an hour, does), while each
// Ack's position is in the fast ack file when Ack returns (issue 16:
// routing's cost was the ack file's fsyncs, one write per round).
func TestTenantsAckWritesNoFsync(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	tenants := []string{"a", "b", "c", "d"}
	q, sts := openTenants(t, Config{Dir: dir, SegmentSize: 32 << 10, AckInterval: time.Hour}, tenants...)
	for r := range 6 {
		appendRound(t, q, 1, 300, tenants...)
		for _, tn := range tenants {
			bs := nextNow(t, sts[tn])
			seq := bs[len(bs)-1].Seq
			require.NoError(t, sts[tn].Ack(seq))
			require.Equal(t, seq, onDiskAcks(t, dir).Done(tn), "round %d tenant %s: position written by Ack", r, tn)
		}
		require.Zero(t, ackFileID(t, dir), "round %d: the ack file is the timer's", r)
	}
	before := ackFileID(t, dir)
	q.flushAcks() // the timer
	require.NotEqual(t, before, ackFileID(t, dir))
	a, err := disk.ReadAck(dir)
	require.NoError(t, err)
	for _, tn := range tenants {
		require.Equal(t, sts[tn].Stats().AckedSeq, a.Done(tn), "tenant %s: the timer writes every position", tn)
	}
}

// TestAckWriteFailureRetriedBeforeNextSend: an Ack whose ack file write
// fails (here ack.tmp cannot be created) keeps the position in memory;
// the next Next writes it before it hands out the next group, so a crash
// then does not resend the acknowledged group.
func TestAckWriteFailureRetriedBeforeNextSend(t *testing.T) {
	for _, c := range ackCases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ep")
			q, rs := c.open(t, dir)
			for range 3 {
				c.round(t, q)
			}
			block := filepath.Join(dir, "ack.tmp")
			require.NoError(t, os.Mkdir(block, 0o750)) // the write of ack.tmp fails
			acked := map[string]uint64{}
			for _, n := range c.names() {
				bs := nextNow(t, rs[n])
				err := rs[n].Ack(bs[len(bs)-1].Seq)
				if c.every == 0 {
					require.Error(t, err, "the ack file cannot be written")
				}
				acked[n] = bs[len(bs)-1].Seq
			}
			require.NoError(t, os.Remove(block))
			next := map[string]uint64{}
			for _, n := range c.names() {
				next[n] = nextNow(t, rs[n])[0].Seq
			}
			crashed := filepath.Join(t.TempDir(), "ep")
			copyLive(t, dir, crashed)
			require.NoError(t, q.Close())
			a := onDiskAcks(t, crashed)
			_, again := c.open(t, crashed)
			for _, n := range c.names() {
				require.Equal(t, acked[n], a.Done(n), "reader %q: position in the file", n)
				require.Equal(t, next[n], nextNow(t, again[n])[0].Seq, "reader %q: resumes at the group it was handed", n)
			}
		})
	}
}

// TestAckWriteFailureLoggedOnce: while the ack file cannot be written,
// every Next that hands out blocks tries again, but the warning is
// logged once per failing spell, and the recovery once.
func TestAckWriteFailureLoggedOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	_, st, log := loggedTenantA(t, Config{Dir: dir})
	block := filepath.Join(dir, "ack.tmp")
	require.NoError(t, os.Mkdir(block, 0o750))
	for range 4 {
		bs := nextNow(t, st)
		require.Error(t, st.Ack(bs[len(bs)-1].Seq))
	}
	require.NoError(t, os.Remove(block))
	nextNow(t, st)
	require.Equal(t, 1, strings.Count(log.String(), "cannot persist the acknowledged positions"), log.String())
	require.Equal(t, 1, strings.Count(log.String(), "acknowledged positions persisted again"), log.String())
}

// TestFastAckWriteFailureFallsBack: while the fast ack file cannot be
// written, Ack keeps the position in memory (logged once) and the next
// Next writes the ack file instead before it hands out blocks, so a
// crash still resends no acknowledged group.
func TestFastAckWriteFailureFallsBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q, st, log := loggedTenantA(t, Config{Dir: dir, AckInterval: time.Hour})
	q.ackMu.Lock()
	require.NoError(t, q.fast.Close()) // its writes fail from now on
	q.ackMu.Unlock()
	var acked uint64
	for i := range 3 {
		bs := nextNow(t, st)
		acked = bs[len(bs)-1].Seq
		require.NoError(t, st.Ack(acked))
		if i == 0 {
			require.Zero(t, ackFileID(t, dir), "Ack leaves the ack file to Next")
		}
	}
	next := nextNow(t, st)[0].Seq
	a, err := disk.ReadAck(dir)
	require.NoError(t, err)
	require.Equal(t, acked, a.Done("a"), "Next wrote the ack file")
	crashed := filepath.Join(t.TempDir(), "ep")
	copyLive(t, dir, crashed)
	q.ackMu.Lock()
	q.fast, err = disk.CreateFastAck(t.TempDir(), 1) // for a clean Close
	q.ackMu.Unlock()
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(log.String(), "cannot write the fast ack file"), log.String())
	_, again := openTenants(t, Config{Dir: crashed, AckInterval: time.Hour}, "a")
	require.Equal(t, next, nextNow(t, again["a"])[0].Seq, "resumes at the group it was handed")
}

// TestTenantsPowerLossResendsOnlyUnsyncedAcks: tenants acknowledge rounds
// with small segments (so acks free segments); the timer writes the ack
// file once in the middle, then more rounds are acknowledged (fast ack
// file only). A power cut then leaves the fsynced files: the segments
// (fsync "append") and the ack file of the timer's write, with the fast
// file lost, stale or garbage. Each tenant resumes exactly after the
// position the timer wrote: what it resends is what was acknowledged
// since, and nothing is lost, as no segment the ack file did not cover
// was deleted on the fast file's word.
func TestTenantsPowerLossResendsOnlyUnsyncedAcks(t *testing.T) {
	for _, fast := range []string{"lost", "stale", "garbage"} {
		t.Run("fast-file-"+fast, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ep")
			tenants := []string{"a", "b"}
			q, sts := openTenants(t, Config{Dir: dir, SegmentSize: 32 << 10, AckInterval: time.Hour}, tenants...)
			sent := map[string][]uint64{} // seqs each tenant sent and acknowledged
			sendRounds := func(n int) {
				for range n {
					appendRound(t, q, 1, 8000, tenants...)
					for _, tn := range tenants {
						bs := nextNow(t, sts[tn])
						sent[tn] = append(sent[tn], seqs(bs)...)
						require.NoError(t, sts[tn].Ack(bs[len(bs)-1].Seq))
					}
				}
			}
			sendRounds(4)
			q.flushAcks() // the timer
			synced := map[string]uint64{}
			for _, tn := range tenants {
				synced[tn] = sts[tn].Stats().AckedSeq
			}
			ackFile, err := os.ReadFile(filepath.Join(dir, disk.AckFileName))
			require.NoError(t, err)
			staleFast, err := os.ReadFile(filepath.Join(dir, disk.FastAckFileName))
			require.NoError(t, err)
			sendRounds(6) // several segments' worth, acknowledged in the fast file only

			cut := filepath.Join(t.TempDir(), "ep")
			copyLive(t, dir, cut)
			require.NoError(t, os.WriteFile(filepath.Join(cut, disk.AckFileName), ackFile, 0o640))
			switch fast {
			case "lost":
				require.NoError(t, os.Remove(filepath.Join(cut, disk.FastAckFileName)))
			case "stale":
				require.NoError(t, os.WriteFile(filepath.Join(cut, disk.FastAckFileName), staleFast, 0o640))
			case "garbage":
				require.NoError(t, os.WriteFile(filepath.Join(cut, disk.FastAckFileName), bytes.Repeat([]byte{0xa5}, 3*disk.FastAckAlign), 0o640))
			}
			_, again := openTenants(t, Config{Dir: cut, AckInterval: time.Hour}, tenants...)
			for _, tn := range tenants {
				var want []uint64 // acknowledged after the timer's write
				for _, seq := range sent[tn] {
					if seq > synced[tn] {
						want = append(want, seq)
					}
				}
				require.NotEmpty(t, want)
				var got []uint64
				for len(got) < len(want) {
					got = append(got, seqs(nextNow(t, again[tn]))...)
				}
				require.Equal(t, want, got, "tenant %s: resends exactly what the timer had not written", tn)
			}
		})
	}
}

// TestFastAckOverAnotherAckFileIgnored: a fast record counts only over the
// ack file it was written over. After a SIGKILL the fast file is ahead of
// the ack file; if a release that does not know the fast file then ran
// and wrote the ack file (it may have reused the seqs the fast record
// names), the record is ignored, as it is after a clean Close.
func TestFastAckOverAnotherAckFileIgnored(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	q, sts := openTenants(t, Config{Dir: dir, SegmentSize: 32 << 10, AckInterval: time.Hour}, "a")
	for range 4 {
		appendRound(t, q, 1, 100, "a")
	}
	first := nextNow(t, sts["a"])
	for range 2 {
		bs := nextNow(t, sts["a"])
		require.NoError(t, sts["a"].Ack(bs[len(bs)-1].Seq))
	}
	killed := filepath.Join(t.TempDir(), "ep")
	copyLive(t, dir, killed)
	require.Equal(t, sts["a"].Stats().AckedSeq, onDiskAcks(t, killed).Done("a"), "the fast record is ahead")

	// The other release acknowledged the first group only.
	require.NoError(t, disk.WriteAck(killed, disk.AckState{Seq: first[len(first)-1].Seq}))
	_, again := openTenants(t, Config{Dir: killed, AckInterval: time.Hour}, "a")
	require.Equal(t, first[len(first)-1].Seq+1, nextNow(t, again["a"])[0].Seq, "the ack file's position, not the fast record's")
}

// TestFastAckFoldedAtOpen: Open after a SIGKILL writes the fast record's
// positions into the ack file before it truncates ack.fast for its own
// writes, so a second SIGKILL right after that Open (no Ack since) still
// resends no acknowledged group.
func TestFastAckFoldedAtOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	cfg := Config{Dir: dir, SegmentSize: 32 << 10, AckInterval: time.Hour}
	q, sts := openTenants(t, cfg, "a", "b")
	for range 4 {
		appendRound(t, q, 1, 100, "a", "b")
	}
	var acked uint64
	for range 2 {
		bs := nextNow(t, sts["a"])
		acked = bs[len(bs)-1].Seq
		require.NoError(t, sts["a"].Ack(acked))
	}
	require.Zero(t, ackFileID(t, dir))
	killed := filepath.Join(t.TempDir(), "ep")
	copyLive(t, dir, killed)

	cfg.Dir = killed
	q2, _ := openTenants(t, cfg, "a", "b")
	fi, err := os.Stat(filepath.Join(killed, disk.FastAckFileName))
	require.NoError(t, err)
	require.Zero(t, fi.Size(), "truncated for this life's records")
	a, err := disk.ReadAck(killed)
	require.NoError(t, err)
	require.Equal(t, acked, a.Done("a"), "the fast record's position is in the ack file")
	again := filepath.Join(t.TempDir(), "ep")
	copyLive(t, killed, again)
	require.NoError(t, q2.Close())

	cfg.Dir = again
	_, sts3 := openTenants(t, cfg, "a", "b")
	require.Greater(t, nextNow(t, sts3["a"])[0].Seq, acked, "a's acknowledged groups do not come again")
}

// loggedTenantA opens cfg's WAL with tenants, logging into the returned
// buffer, with a stream of tenant "a" and six rounds of 100 samples
// appended for it; the queue is closed at cleanup.
func loggedTenantA(t *testing.T, cfg Config) (*Queue, *Stream, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	cfg.Tenants = true
	q, err := Open(cfg, slog.New(slog.NewTextHandler(&log, nil)), nil)
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	st, err := q.Stream("a", 0, nil)
	require.NoError(t, err)
	for range 6 {
		appendRound(t, q, 1, 100, "a")
	}
	return q, st, &log
}
