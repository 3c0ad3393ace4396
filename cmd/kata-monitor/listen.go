package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/prometheus/exporter-toolkit/web"
)

// errListenBusy marks a listen failure of the host (address in use, port
// not permitted), a runtime failure, as opposed to a flag that can never
// work (a bad flag).
var errListenBusy = errors.New("listen address unavailable")

// listen checks the listener flags and binds the address, before anything
// else starts: a bad --listen-address or --web.config.file is refused as a
// bad flag (exit 2), never after "started". An address in use wraps
// errListenBusy.
func listen(address, webConfigFile string) (net.Listener, error) {
	if webConfigFile != "" {
		if err := web.Validate(webConfigFile); err != nil {
			return nil, fmt.Errorf("--web.config.file %s: %w", webConfigFile, err)
		}
	}
	if _, port, err := net.SplitHostPort(address); err != nil {
		return nil, fmt.Errorf("--listen-address %q: want host:port, e.g. 127.0.0.1:8090 or :8090 (%w)", address, err)
	} else if port == "" {
		return nil, fmt.Errorf("--listen-address %q: missing port, e.g. 127.0.0.1:8090", address)
	}
	l, err := net.Listen("tcp", address)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("listen on %s: address already in use (is another kata-monitor running?): %w", address, errListenBusy)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("listen on %s: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE): %w", address, errListenBusy)
	case err != nil:
		return nil, fmt.Errorf("--listen-address %q: %w", address, err)
	}
	return l, nil
}
