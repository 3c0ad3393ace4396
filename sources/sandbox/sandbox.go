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

// LogKey is the log attribute of a sandbox id, in every package: the name
// of the label the id is served under, so one search finds a sandbox in
// logs and series alike.
const LogKey = "sandbox_id"
