package shim

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Pool holds one Client per monitor socket so keep-alive connections are
// reused from one scrape round to the next. It is concurrency-safe and
// starts nothing; call Forget when a sandbox goes away.
type Pool struct {
	cfg Config
	m   *metrics

	mu      sync.Mutex
	clients map[string]*Client
}

// NewPool validates cfg and registers kata_monitor_shim_requests_total on
// reg (nil: not registered).
func NewPool(cfg Config, reg prometheus.Registerer) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("shim config: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Pool{cfg: cfg, m: m, clients: make(map[string]*Client)}, nil
}

// Client returns the client for socket, creating it on first use. It does
// not connect. socket must come from the sandbox set, never from a request.
func (p *Pool) Client(socket string) *Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[socket]
	if !ok {
		c = newClient(socket, p.cfg, p.m)
		p.clients[socket] = c
	}
	return c
}

// Forget drops the client for socket and closes its idle connections (the
// sandbox vanished). Requests in flight finish on their own; a later Client
// call builds a fresh client.
func (p *Pool) Forget(socket string) {
	p.mu.Lock()
	c, ok := p.clients[socket]
	delete(p.clients, socket)
	p.mu.Unlock()
	if ok {
		c.transport.CloseIdleConnections()
		c.lean.close()
	}
}

// Scrape is p.Client(socket).Scrape(ctx, dst).
func (p *Pool) Scrape(ctx context.Context, socket string, dst []byte) ([]byte, string, error) {
	return p.Client(socket).Scrape(ctx, dst)
}

// Metrics is p.Client(socket).Metrics(ctx, dst).
func (p *Pool) Metrics(ctx context.Context, socket string, dst []byte) ([]byte, error) {
	return p.Client(socket).Metrics(ctx, dst)
}
