package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

const (
	// shutdownGrace is how long in-flight requests may finish after ctx ends.
	shutdownGrace = 5 * time.Second
	// idleTimeout closes idle keep-alive connections.
	idleTimeout = 2 * time.Minute
)

// Run listens on listenAddress and serves Handler until ctx ends, with TLS
// and basic auth from webConfigFile (exporter-toolkit format; "" = plain
// HTTP). It blocks. On ctx end it shuts down gracefully (5s) and returns nil;
// otherwise it returns the listen or serve error.
func (a *API) Run(ctx context.Context, listenAddress, webConfigFile string) error {
	if listenAddress == "" {
		return errors.New("listen address: empty")
	}
	systemd := false
	flags := &web.FlagConfig{
		WebListenAddresses: &[]string{listenAddress},
		WebSystemdSocket:   &systemd,
		WebConfigFile:      &webConfigFile,
	}
	err := a.serve(ctx, func(s *http.Server) error { return web.ListenAndServe(s, flags, a.logger) })
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("listen on %s: address already in use (is another kata-monitor running?): %w", listenAddress, err)
	}
	if err != nil {
		return fmt.Errorf("serve on %s: %w", listenAddress, err)
	}
	return nil
}

// Serve is Run on a listener the caller made (tests, socket activation).
// It takes ownership of l and closes it before returning.
func (a *API) Serve(ctx context.Context, l net.Listener, webConfigFile string) error {
	flags := &web.FlagConfig{WebConfigFile: &webConfigFile}
	err := a.serve(ctx, func(s *http.Server) error { return web.Serve(l, s, flags, a.logger) })
	_ = l.Close() // already closed by the server in the usual case
	if err != nil {
		return fmt.Errorf("serve on %s: %w", l.Addr(), err)
	}
	return nil
}

// newServer builds the http.Server: every timeout and size bound lives here.
// baseCtx is the parent of every request context.
func (a *API) newServer(baseCtx context.Context) *http.Server {
	return &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: a.cfg.readHeaderTimeout(),
		ReadTimeout:       a.cfg.ReadTimeout,
		WriteTimeout:      a.cfg.WriteTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    a.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
	}
}

// serve runs start (which blocks serving) until it fails or ctx ends, then
// stops soft (Shutdown, up to shutdownGrace) and hard (cancel the requests'
// context, close the connections). It returns once start has returned.
func (a *API) serve(ctx context.Context, start func(*http.Server) error) error {
	// Requests must outlive ctx during the grace period, so their context
	// does not derive from ctx's cancellation; it is cancelled at the hard stop.
	baseCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := a.newServer(baseCtx)
	errc := make(chan error, 1)
	go func() { errc <- start(srv) }()

	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.logger.Warn("http shutdown grace expired, closing connections", "err", err)
		cancelRequests()
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
