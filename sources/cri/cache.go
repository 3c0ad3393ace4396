package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxMsgSize bounds a ListPodSandbox answer: a few hundred bytes per pod,
// so 16 MiB leaves room for tens of thousands of pods with big labels.
const maxMsgSize = 16 << 20

// Cache maps sandbox ids to pod metadata from the CRI. Lookups are served
// from memory and never wait for the network; Run keeps the cache fresh.
type Cache struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	conn    *grpc.ClientConn
	client  runtimeapi.RuntimeServiceClient
	// wake has capacity 1: lookups of unknown ids coalesce into one
	// pending refresh request.
	wake chan struct{}

	// refreshing (capacity 1) serialises Refresh so that an older answer
	// never replaces a newer one; a channel rather than a mutex so that
	// waiting for it honours ctx.
	refreshing chan struct{}

	mu   sync.RWMutex
	pods map[string]Pod
}

// New validates cfg and prepares a lazy gRPC client: nothing is dialled
// until the first refresh, so New succeeds while the runtime is down. New
// starts no goroutine of its own; Run must be called, and closes the
// connection when it returns. Metrics go to reg (nil: not exported).
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cri config: %w", err)
	}
	if logger == nil {
		return nil, errors.New("cri: nil logger")
	}
	path, err := socketPath(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(unixScheme+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)),
		// A restarted runtime should be noticed within seconds, not after
		// gRPC's default 2 minute backoff ceiling.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   5 * time.Second,
			},
			MinConnectTimeout: cfg.Timeout,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("cri client for %s: %w", path, err)
	}
	return &Cache{
		cfg:        cfg,
		logger:     logger,
		metrics:    m,
		conn:       conn,
		client:     runtimeapi.NewRuntimeServiceClient(conn),
		wake:       make(chan struct{}, 1),
		refreshing: make(chan struct{}, 1),
		pods:       make(map[string]Pod),
	}, nil
}

// Lookup returns the metadata of sandbox id from memory. It never blocks on
// the network: for an id the cache does not know it returns false and asks
// Run for a refresh (rate limited by MinRefreshInterval), so that the pod of
// a new sandbox shows up shortly after. Concurrency-safe.
func (c *Cache) Lookup(id string) (Pod, bool) {
	c.mu.RLock()
	p, ok := c.pods[id]
	c.mu.RUnlock()
	if !ok && id != "" {
		select {
		case c.wake <- struct{}{}:
		default: // a refresh is already pending
		}
	}
	return p, ok
}

// Refresh lists every pod sandbox (no filter: ready and not ready) and
// replaces the cache with the answer. It blocks for at most Timeout (or until
// ctx ends). On error the cache keeps its previous content, so labels stay
// stable while the runtime restarts. Concurrency-safe; calls are serialised.
func (c *Cache) Refresh(ctx context.Context) error {
	select {
	case c.refreshing <- struct{}{}:
		defer func() { <-c.refreshing }()
	case <-ctx.Done():
		return fmt.Errorf("list pod sandboxes: %w", ctx.Err())
	}

	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := c.client.ListPodSandbox(rctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		if ctx.Err() != nil {
			// Our caller gave up: says nothing about the runtime.
			return fmt.Errorf("list pod sandboxes: %w", ctx.Err())
		}
		c.metrics.failure.Inc()
		c.metrics.up.Set(0)
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	pods := make(map[string]Pod, len(resp.GetItems()))
	for _, sb := range resp.GetItems() {
		md := sb.GetMetadata()
		if sb.GetId() == "" || md == nil {
			continue
		}
		pods[sb.GetId()] = Pod{UID: md.GetUid(), Name: md.GetName(), Namespace: md.GetNamespace()}
	}
	c.mu.Lock()
	c.pods = pods
	c.mu.Unlock()
	c.metrics.success.Inc()
	c.metrics.up.Set(1)
	c.metrics.pods.Set(float64(len(pods)))
	return nil
}
