// Command run serves a simulated Kata node until interrupted, for trying
// kata-monitor by hand (README "Quick start"):
//
//	go build -o bin/fakenode ./test/fakenode/run && bin/fakenode -n 5 -dir /tmp/km-node &
//	bin/kata-monitor --sandbox-root /tmp/km-node/sbs --runtime-endpoint /tmp/km-node/cri.sock
//
// With -dir, a previous run's sandboxes and CRI socket there are replaced,
// and removed again on exit.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
)

func main() {
	n := flag.Int("n", 20, "number of sandboxes")
	dir := flag.String("dir", "", "directory to lay the node out in (default: a new temp dir, removed on exit)")
	flag.Parse()
	if err := run(*n, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "fakenode:", err)
		os.Exit(1)
	}
}

func run(n int, dir string) error {
	if n <= 0 {
		return fmt.Errorf("-n %d: want at least one sandbox", n)
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "km")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else {
		// What a previous run left (after a kill) would make the sockets
		// fail to bind: this node owns dir/sbs and dir/cri.sock.
		owned := []string{filepath.Join(dir, "sbs"), filepath.Join(dir, "cri.sock")}
		for _, p := range owned {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
		defer func() {
			for _, p := range owned {
				_ = os.RemoveAll(p)
			}
		}()
	}
	node, err := fakenode.Start(dir, n, fakeshim.Options{})
	if err != nil {
		return err
	}
	defer node.Close()
	fmt.Printf("fake node: %d sandboxes\n  --sandbox-root %s --runtime-endpoint %s\nCtrl-C to stop.\n", n, node.Root, node.CRISocket)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
