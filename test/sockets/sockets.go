// Package sockets holds the test helpers for unix sockets: a directory
// short enough for them, and an HTTP server on one.
package sockets

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Dir returns a new temporary directory, removed when the test ends, with
// a short path: a unix socket path is at most 107 bytes (sun_path), which
// t.TempDir's paths (they contain the test's name) can exceed once a
// sandbox root and a 64-hex sandbox id are appended
// (<dir>/sbs/<id>/shim-monitor.sock).
func Dir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "km")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// Serve serves h over HTTP on a new unix socket in a new Dir, with an
// optional ConnState hook, and returns the socket's path. The server is
// closed, and its Serve goroutine waited for, when the test ends.
func Serve(t testing.TB, h http.Handler, connState func(net.Conn, http.ConnState)) string {
	t.Helper()
	sock := filepath.Join(Dir(t), "s.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ConnState: connState, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return sock
}
