// Package send delivers one remote_write endpoint's queued requests: it
// reads groups of encoded blocks from the endpoint's WAL, POSTs each block
// (HTTP client with the endpoint's authentication, remote write 1.0 or 2.0
// headers), applies the status policy to every answer (client.StatusAction:
// retry with backoff, split refused requests down to the refused series,
// lower the request size after a 413, fall back from 2.0 to 1.0) and
// acknowledges a group once all its blocks are sent or dropped on purpose.
// It also holds the endpoint's self-metrics (Metrics). The rules are
// described in remotewrite/doc.go ("Status policy") and
// docs/remote-write.md; package remotewrite owns the WAL and the encoding
// of rounds, and runs a Sender.
package send

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/send/client"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// WAL is what a Sender reads from the endpoint's durable queue
// (wal.Queue): groups of blocks in order, and the acknowledgement of a
// prefix of them.
type WAL interface {
	Next(ctx context.Context, max int) ([]wal.Block, error)
	Ack(seq uint64) error
}

// Options are a Sender's settings beyond the endpoint's config.
type Options struct {
	// UserAgent is every request's User-Agent (a User-Agent in the
	// config's headers wins).
	UserAgent string
	// FlushDeadline is how long requests in flight may run on after
	// Run's context ends.
	FlushDeadline time.Duration
	// OnFallback, when set, is called once when the endpoint falls back
	// from remote write 2.0 to 1.0 (see FellBack).
	OnFallback func()
}

// Sender sends one endpoint's blocks. Run reads and sends; Store and
// FellBack are safe to call concurrently with it.
type Sender struct {
	cfg           config.Config
	logger        *slog.Logger
	metrics       *Metrics
	client        *client.Client
	comp          *codec.Compressor
	flushDeadline time.Duration
	onFallback    func()

	// sendLimit is the most samples one request may hold: max_samples_per_send,
	// lowered when the receiver answers 413.
	sendLimit atomic.Int64
	// fellBack is set once a receiver refused 2.0 (see fallBack): queued
	// 2.0 blocks are then sent as 1.0. confirmedV2 is set once a 2.0
	// request was written.
	fellBack    atomic.Bool
	confirmedV2 atomic.Bool
	// limiter is queue_config.max_bytes_per_second; nil without a cap.
	limiter *rate.Limiter

	retryLog *LogLimiter
	dropLog  *LogLimiter
	ackLog   *LogLimiter
}

// New returns a Sender for the endpoint cfg (defaulted and valid) over the
// transport rt (config.Config.NewRoundTripper), decoding blocks to split
// or transcode them with comp, counting on m.
func New(cfg config.Config, rt http.RoundTripper, comp *codec.Compressor, m *Metrics, logger *slog.Logger, o Options) *Sender {
	s := &Sender{
		cfg:           cfg,
		logger:        logger,
		metrics:       m,
		comp:          comp,
		flushDeadline: o.FlushDeadline,
		onFallback:    o.OnFallback,
	}
	if bps := int(cfg.QueueConfig.MaxBytesPerSecond); bps > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(bps), bps)
	}
	s.sendLimit.Store(int64(cfg.QueueConfig.MaxSamplesPerSend))
	m.sendLimit.Set(float64(cfg.QueueConfig.MaxSamplesPerSend))
	s.client = client.New(cfg, rt, o.UserAgent, m.observeRequest)
	s.retryLog, s.dropLog, s.ackLog = NewLogLimiter(LogEvery, time.Now), NewLogLimiter(LogEvery, time.Now), NewLogLimiter(LogEvery, time.Now)
	return s
}

// CloseIdleConnections closes the client's keep-alive connections that no
// request uses (client.Client.CloseIdleConnections); requests in flight
// keep theirs.
func (s *Sender) CloseIdleConnections() { s.client.CloseIdleConnections() }

// Run sends one group at a time until ctx ends; groups are sequential so
// each series' samples reach the receiver in order. When ctx ends no new
// group starts and requests in flight get up to the flush deadline; the
// leading blocks that finished are acknowledged. It returns nil then, or
// the WAL's error.
func (s *Sender) Run(ctx context.Context, w WAL) error {
	for ctx.Err() == nil {
		blocks, err := w.Next(ctx, s.cfg.QueueConfig.MaxShards)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read wal: %w", err)
		}
		if len(blocks) == 0 {
			continue
		}
		if ctx.Err() != nil {
			// Next hands out available blocks even after cancel; unacked,
			// they are read again after the next start.
			return nil
		}
		done := s.sendGroup(ctx, blocks)
		if done > 0 {
			// A failed Ack (a full disk cannot take the ack file) still
			// moves the position in memory; only a restart would resend
			// these blocks. It must not stop sending, let alone the daemon.
			if err := w.Ack(blocks[done-1].Seq); err != nil {
				if ok, suppressed := s.ackLog.Allow(); ok {
					s.logger.Warn("cannot persist the acknowledged position; a restart would resend", "err", err, "seq", blocks[done-1].Seq, "suppressed", suppressed)
				}
			}
		}
		if done < len(blocks) {
			// Only shutdown leaves a group unfinished.
			return nil
		}
	}
	return nil
}

// sendGroup sends the blocks of one group concurrently (they hold disjoint
// series) and returns how many leading blocks are done; only that prefix
// may be acknowledged. Blocks after a gap are sent again next start, which
// receivers accept as duplicates.
func (s *Sender) sendGroup(ctx context.Context, blocks []wal.Block) int {
	// Requests must outlive ctx by up to the flush deadline, so they run
	// on a context of their own, cancelled by the watcher below.
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	finished := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		select {
		case <-finished:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(s.flushDeadline)
		defer t.Stop()
		select {
		case <-finished:
		case <-t.C:
			cancel()
		}
	})

	ok := make([]bool, len(blocks))
	var g errgroup.Group
	g.SetLimit(s.cfg.QueueConfig.MaxShards)
	for i := range blocks {
		g.Go(func() error {
			ok[i] = s.sendBlock(ctx, sendCtx, blocks[i])
			return nil
		})
	}
	_ = g.Wait() // the goroutines never fail; outcomes are in ok
	close(finished)
	watcher.Wait()

	n := 0
	for n < len(ok) && ok[n] {
		n++
	}
	return n
}

// FellBack reports whether the endpoint fell back from remote write 2.0
// to 1.0 (see fallBack): new rounds are then to be written as 1.0, and
// metadata sent in 1.0 metadata requests.
func (s *Sender) FellBack() bool { return s.fellBack.Load() }

// fallBack switches the endpoint to remote write 1.0 after a receiver
// refused a 2.0 request as such (remote write 2.0 specification, "2.x vs
// 1.x Compatibility": senders "MAY automatically fall back to different
// content types, if the Receiver returns 415"). Queued 2.0 blocks are
// transcoded when sent; OnFallback tells the queue, which writes new
// rounds as 1.0 and sends metadata in 1.0 metadata requests again. It
// lasts until the next start, which tries 2.0 again (one refused
// request). Logged and counted once.
func (s *Sender) fallBack(why error) {
	if s.fellBack.Swap(true) {
		return
	}
	s.metrics.fallbacks.Inc()
	s.logger.Warn("receiver does not take remote write 2.0; sending 1.0 (prometheus.WriteRequest) until restart",
		"reason", why, "protobuf_message", codec.MessageV1)
	if s.onFallback != nil {
		s.onFallback()
	}
}

// Store sends one request of format f once, after the rate cap lets it
// go: for best-effort requests (metadata) that are not retried. It
// returns nil on 2xx.
func (s *Sender) Store(ctx context.Context, data []byte, f codec.Format) error {
	if err := s.waitRate(ctx, len(data)); err != nil {
		return err
	}
	return s.client.Store(ctx, data, f)
}

// waitRate waits until the rate cap lets n more bytes go (at once without
// a cap); it returns ctx's error if ctx ends first.
func (s *Sender) waitRate(ctx context.Context, n int) error {
	if s.limiter == nil {
		return nil
	}
	for n > 0 {
		k := min(n, s.limiter.Burst())
		if err := s.limiter.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

var _ WAL = (*wal.Queue)(nil)
