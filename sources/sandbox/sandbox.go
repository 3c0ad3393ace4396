// Package sandbox tracks the live set of Kata sandboxes on this host.
package sandbox

// Sandbox is one Kata pod sandbox found under a sandbox root. Its fields come
// from the directory listing, never from request input.
type Sandbox struct {
	// ID is the directory name under Root: the sandbox id.
	ID string
	// Root is the sandbox root the directory was found under.
	Root string
	// Socket is the shim's monitor socket, <Root>/<ID>/shim-monitor.sock.
	Socket string
}
