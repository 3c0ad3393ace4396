package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

// TestTenantsConcurrent: one goroutine appends rounds for 8 tenants while
// each tenant's reader takes and acknowledges its blocks, and another
// goroutine detaches readers at random (as an idle close would, from
// outside the reader), each reader attaching again; run with -race. At the
// end every appended block was handed out, in order within each reader's
// attachment, and no acknowledged block was handed out again.
func TestTenantsConcurrent(t *testing.T) {
	const tenants, rounds = 8, 80
	q, _ := openTenants(t, Config{Dir: filepath.Join(t.TempDir(), "ep"), SegmentSize: 32 << 10, MemoryBytes: 16 << 10, Fsync: FsyncSegment})
	names := make([]string, tenants)
	current := make([]atomic.Pointer[Stream], tenants)
	for i := range names {
		names[i] = fmt.Sprintf("t%d.ü", i)
	}
	var mu sync.Mutex // guards delivered, acked
	delivered, acked := make([]map[uint64]bool, tenants), make([]map[uint64]bool, tenants)
	appended := make([][]uint64, tenants)
	writerDone := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var g errgroup.Group
	g.Go(func() error { // the writer
		defer close(writerDone)
		id := uint64(0)
		rng := rand.New(rand.NewPCG(1, 2))
		for range rounds {
			var groups [][]Block
			for i, tn := range names {
				if rng.IntN(4) == 0 {
					continue
				}
				var bs []Block
				for range 1 + rng.IntN(3) {
					id++
					data := make([]byte, 100+rng.IntN(3000))
					binary.BigEndian.PutUint64(data, id)
					bs = append(bs, Block{Tenant: tn, Samples: 1, Data: data})
					appended[i] = append(appended[i], id)
				}
				groups = append(groups, bs)
			}
			if err := q.AppendGroups(groups); err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error { // detaches readers from outside
		rng := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-writerDone:
				return nil
			case <-time.After(time.Millisecond):
			}
			if st := current[rng.IntN(tenants)].Load(); st != nil {
				if err := st.Close(); err != nil && !errors.Is(err, ErrClosed) {
					return err
				}
			}
		}
	})
	for i, tn := range names {
		delivered[i], acked[i] = map[uint64]bool{}, map[uint64]bool{}
		g.Go(func() error { return concurrentReader(ctx, q, tn, &current[i], &mu, delivered[i], acked[i]) })
	}
	<-writerDone
	all := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range names {
			if len(delivered[i]) < len(appended[i]) {
				return false
			}
		}
		return true
	}
	for end := time.Now().Add(30 * time.Second); !all() && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond) // polled: a reader that failed returns at once below
	}
	cancel()
	require.NoError(t, g.Wait())
	for i := range names {
		for _, id := range appended[i] {
			require.True(t, delivered[i][id], "tenant %s block %d", names[i], id)
		}
	}
}

// concurrentReader reads tenant's stream until ctx ends, attaching again
// whenever its reader was detached, and checks order and acknowledgements.
func concurrentReader(ctx context.Context, q *Queue, tenant string, current *atomic.Pointer[Stream], mu *sync.Mutex, delivered, acked map[uint64]bool) error {
	for ctx.Err() == nil {
		st, err := q.Stream(tenant, 0, nil)
		if err != nil {
			return err
		}
		current.Store(st)
		var lastID uint64
		for {
			bs, err := st.Next(ctx, 4)
			if errors.Is(err, ErrClosed) {
				break // detached: attach again
			}
			if err != nil {
				_ = st.Close()
				return nil // ctx ended
			}
			mu.Lock()
			for _, b := range bs {
				id := binary.BigEndian.Uint64(b.Data)
				if id <= lastID || acked[id] || b.Tenant != tenant {
					mu.Unlock()
					return fmt.Errorf("tenant %s: block %d (seq %d, tenant %q) after %d, acked before: %v", tenant, id, b.Seq, b.Tenant, lastID, acked[id])
				}
				lastID = id
				delivered[id] = true
			}
			mu.Unlock()
			if err := st.Ack(bs[len(bs)-1].Seq); errors.Is(err, ErrClosed) {
				break // detached before the ack: the blocks come again
			} else if err != nil {
				return err
			}
			mu.Lock()
			for _, b := range bs {
				acked[binary.BigEndian.Uint64(b.Data)] = true
			}
			mu.Unlock()
		}
	}
	return nil
}
