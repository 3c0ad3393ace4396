package wal

import (
	"bytes"
	"context"
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
// timer at an hour this fails unless Next writes the pending positions;
// the plain queue writes at every Ack. A second crash point, right after
// an Ack with no later hand-out, may resend that one group only.
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
							require.GreaterOrEqual(t, first, groups[n][k-1][0].Seq,
								"reader %q: at most its last acknowledged group comes again (groups %v)", n, groupSeqs(groups[n]))
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

// TestTenantsOneAckWritePerRound: in steady state (each round appended,
// then every tenant sends and acknowledges its group) the ack file is
// written once per round for all tenants, by the first tenant that takes
// the next round, and the other tenants' Next find their positions in
// it (issue 16: a write per tenant per round was most of routing's cost).
func TestTenantsOneAckWritePerRound(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ep")
	tenants := []string{"a", "b", "c", "d"}
	q, sts := openTenants(t, Config{Dir: dir, SegmentSize: 32 << 10, AckInterval: time.Hour}, tenants...)
	writes, last := 0, ackFileID(t, dir)
	for r := range 6 {
		appendRound(t, q, 1, 300, tenants...)
		for i, tn := range tenants {
			bs := nextNow(t, sts[tn])
			if id := ackFileID(t, dir); id != last {
				require.Zero(t, i, "round %d: only the first tenant's Next writes the ack file, not %s's", r, tn)
				writes, last = writes+1, id
			}
			require.NoError(t, sts[tn].Ack(bs[len(bs)-1].Seq))
		}
		require.Equal(t, last, ackFileID(t, dir), "round %d: Ack (timer an hour) writes nothing", r)
		require.Equal(t, r, writes, "writes after round %d", r)
	}
	a, err := disk.ReadAck(dir)
	require.NoError(t, err)
	for _, tn := range tenants {
		require.Equal(t, sts[tn].Stats().AckedSeq-4, a.Done(tn), "tenant %s: the file holds the round before the last", tn)
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
			a, err := disk.ReadAck(crashed)
			require.NoError(t, err)
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
	var log bytes.Buffer
	q, err := Open(Config{Dir: dir, Tenants: true, AckInterval: time.Hour}, slog.New(slog.NewTextHandler(&log, nil)), nil)
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	st, err := q.Stream("a", 0, nil)
	require.NoError(t, err)
	for range 6 {
		appendRound(t, q, 1, 100, "a")
	}
	block := filepath.Join(dir, "ack.tmp")
	require.NoError(t, os.Mkdir(block, 0o750))
	for range 4 {
		bs := nextNow(t, st)
		require.NoError(t, st.Ack(bs[len(bs)-1].Seq))
	}
	require.NoError(t, os.Remove(block))
	nextNow(t, st)
	require.Equal(t, 1, strings.Count(log.String(), "cannot persist the acknowledged positions"), log.String())
	require.Equal(t, 1, strings.Count(log.String(), "acknowledged positions persisted again"), log.String())
}
