// Package fakenode lays out a simulated Kata host for tests, the demo and the
// benchmark: a sandbox root with one directory per sandbox, a fake shim
// serving HTTP on each <root>/<id>/shim-monitor.sock, and a fake CRI on a unix
// socket that knows the pods. Everything runs in-process on real sockets.
package fakenode

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/test/fakecri"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
)

// Node is a running simulated host. Concurrency-safe.
type Node struct {
	// Dir holds everything; keep it short: socket paths are limited to 108 bytes.
	Dir string
	// Root is the sandbox root to pass as --sandbox-root.
	Root string
	// CRISocket is the fake CRI's endpoint to pass as --runtime-endpoint.
	CRISocket string
	CRI       *fakecri.Server

	opts  fakeshim.Options
	mu    sync.Mutex
	shims map[string]*fakeshim.Shim
	next  int
}

// Start creates dir/sbs and dir/cri.sock and n sandboxes with pods in the CRI.
// dir must be short (e.g. from os.MkdirTemp("", "km")).
func Start(dir string, n int, opts fakeshim.Options) (*Node, error) {
	root := filepath.Join(dir, "sbs")
	// A unix socket path holds at most 107 bytes; a sandbox id is 64.
	if sock := filepath.Join(root, ID(0), "shim-monitor.sock"); len(sock) > 107 {
		return nil, fmt.Errorf("%s is too long for unix sockets under it (%d > 107 bytes): use a shorter dir", dir, len(sock))
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "cri.sock")
	srv, err := fakecri.Start(sock)
	if err != nil {
		return nil, fmt.Errorf("fake cri: %w", err)
	}
	nd := &Node{Dir: dir, Root: root, CRISocket: sock, CRI: srv, opts: opts, shims: map[string]*fakeshim.Shim{}}
	for i := 0; i < n; i++ {
		if _, err := nd.Add(); err != nil {
			nd.Close()
			return nil, err
		}
	}
	return nd, nil
}

// ID returns the sandbox id of the i-th sandbox ever added: 64 hex digits
// like a real one.
func ID(i int) string {
	h := sha256.Sum256([]byte("sandbox-" + strconv.Itoa(i)))
	return hex.EncodeToString(h[:])
}

// PodFor is the CRI metadata the node gives sandbox i.
func PodFor(i int) cri.Pod {
	return cri.Pod{UID: fmt.Sprintf("uid-%04d", i), Name: fmt.Sprintf("pod-%04d", i), Namespace: fmt.Sprintf("ns-%d", i%5)}
}

// Add creates the next sandbox: its directory, its shim and its pod.
func (n *Node) Add() (string, error) {
	n.mu.Lock()
	i := n.next
	n.next++
	n.mu.Unlock()
	id := ID(i)
	dir := filepath.Join(n.Root, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	s, err := fakeshim.Start(filepath.Join(dir, "shim-monitor.sock"), n.opts)
	if err != nil {
		return "", fmt.Errorf("fake shim %d: %w", i, err)
	}
	n.CRI.SetPod(id, PodFor(i))
	n.mu.Lock()
	n.shims[id] = s
	n.mu.Unlock()
	return id, nil
}

// Remove stops a sandbox's shim, removes its directory and its pod.
func (n *Node) Remove(id string) error {
	n.mu.Lock()
	s, ok := n.shims[id]
	delete(n.shims, id)
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("no sandbox %s", id)
	}
	_ = s.Close()
	n.CRI.RemovePod(id)
	return os.RemoveAll(filepath.Join(n.Root, id))
}

// Shim returns the fake shim of a sandbox.
func (n *Node) Shim(id string) *fakeshim.Shim {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.shims[id]
}

// IDs lists the live sandbox ids, sorted.
func (n *Node) IDs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := make([]string, 0, len(n.shims))
	for id := range n.shims {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Scrapes sums the /metrics requests all live shims served.
func (n *Node) Scrapes() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var t int64
	for _, s := range n.shims {
		t += s.Scrapes()
	}
	return t
}

// Close stops every shim and the CRI. The directory is the caller's.
func (n *Node) Close() {
	n.mu.Lock()
	shims := n.shims
	n.shims = map[string]*fakeshim.Shim{}
	n.mu.Unlock()
	for _, s := range shims {
		_ = s.Close()
	}
	n.CRI.Close()
}
