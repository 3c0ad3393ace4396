package tenant

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kata-containers/kata-monitor/remotewrite/wal"
	"github.com/kata-containers/kata-monitor/remotewrite/wal/disk"
)

// migrateBatch is how many payload bytes migrate appends to the shared
// WAL at a time: one write and one fsync each, with bounded memory.
const migrateBatch = 32 << 20

// migrate moves every per-tenant queue directory of the layout before the
// shared WAL (wal.dir/<endpoint>/<escaped tenant>/, one WAL per tenant)
// into the shared WAL: its pending blocks are appended under its tenant,
// group by group and in order, then the directory is removed, so nothing
// on disk is abandoned by an upgrade and each tenant has one sender. A
// crash between the append and the removal migrates the directory again:
// its blocks are then sent twice (at-least-once, as after any crash).
// Blocks the old queue cannot read are logged (its own corruption
// accounting); appended blocks count in the shared WAL's appended totals.
func (r *Router) migrate() error {
	entries, err := os.ReadDir(r.baseDir)
	if err != nil {
		return fmt.Errorf("list wal dir: %w", err)
	}
	for _, e := range entries {
		t, ok := tenantOf(e.Name())
		dir := filepath.Join(r.baseDir, e.Name())
		if !e.IsDir() || !ok || !disk.IsQueueDir(dir) {
			continue
		}
		if err := r.migrateDir(t, dir); err != nil {
			return fmt.Errorf("tenant %q: move %s into the shared WAL: %w", t, dir, err)
		}
	}
	return nil
}

// migrateDir moves tenant's old queue in dir into the shared WAL.
func (r *Router) migrateDir(tenant, dir string) error {
	old, err := wal.Open(wal.Config{Dir: dir, Name: r.cfg.Name}, r.logger, nil)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = old.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Next returns what is there, then ctx's error
	var groups [][]wal.Block
	size, blocks, samples := 0, 0, 0
	flush := func() error {
		err := r.wal.AppendGroups(groups)
		groups, size = groups[:0], 0
		return err
	}
	for {
		bs, err := old.Next(ctx, 1<<30)
		if errors.Is(err, context.Canceled) {
			break
		}
		if err != nil {
			return err
		}
		for i := range bs {
			bs[i].Tenant = tenant
			size += len(bs[i].Data)
			samples += bs[i].Samples
		}
		blocks += len(bs)
		groups = append(groups, bs)
		if size >= migrateBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	done = true
	if err := old.Close(); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	r.logger.Info("moved a tenant's queue of the per-tenant layout into the shared WAL",
		"tenant", tenant, "dir", dir, "blocks", blocks, "samples", samples)
	return nil
}
