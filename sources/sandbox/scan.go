package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// socketName is the file the shim of a sandbox listens on, inside the
// sandbox directory.
const socketName = "shim-monitor.sock"

// validID reports whether name can be a sandbox id. A directory listing
// cannot yield the rejected names, but ids end up in socket paths, so the
// check is kept as a second line of defence.
func validID(name string) bool {
	return name != "" && name != "." && name != ".." &&
		!strings.ContainsRune(name, '/') && !strings.ContainsRune(name, 0)
}

func newSandbox(root, id string) Sandbox {
	return Sandbox{ID: id, Root: root, Socket: filepath.Join(root, id, socketName)}
}

// isDir reports whether <root>/<name> is a directory, following a symlink:
// a symlink to a directory counts, a file or a symlink to a file does not.
func isDir(root, name string) bool {
	fi, err := os.Stat(filepath.Join(root, name))
	return err == nil && fi.IsDir()
}

// listRoot returns the sandbox ids directly under root. A root that does not
// exist yet holds no sandboxes and is not an error.
func listRoot(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list root %s: %w", root, err)
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if !validID(name) {
			continue
		}
		switch {
		case e.IsDir():
		case e.Type()&fs.ModeSymlink != 0 && isDir(root, name):
		default:
			continue
		}
		ids = append(ids, name)
	}
	return ids, nil
}

// resolve finds which root, if any, currently holds id, honouring root
// priority. It is used for single fsnotify events, so that a removal under
// the first root lets a same-named sandbox under a later root show through.
func resolve(roots []string, id string) (Sandbox, bool) {
	if !validID(id) {
		return Sandbox{}, false
	}
	for _, r := range roots {
		if isDir(r, id) {
			return newSandbox(r, id), true
		}
	}
	return Sandbox{}, false
}
