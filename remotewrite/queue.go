package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/send"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// DefaultFlushDeadline is how long requests in flight may run on after
// Run's context ends.
const DefaultFlushDeadline = 5 * time.Second

// bytesPerSample estimates one encoded, compressed sample for sizing the
// in-memory WAL tail of a tenant's stream from queue_config.capacity.
const bytesPerSample = 10

// blockQueue is the seam to the durable queue (wal.Queue), so the queue
// can be tested without disk. Same contract as wal.Queue.
type blockQueue interface {
	Append(blocks []wal.Block) error
	Next(ctx context.Context, max int) ([]wal.Block, error)
	Ack(seq uint64) error
	Stats() wal.Stats
	Close() error
}

// Option adjusts a Queue beyond its YAML config (things the program, not
// the user, decides).
type Option func(*options)

type options struct {
	userAgent     string
	flushDeadline time.Duration
	// walShared, walTenant and walShare are set by WithWALStream (tenant
	// queues).
	walShared *wal.Queue
	walTenant string
	walShare  int
	// enc is set by WithSharedEncoder (tenant queues).
	enc *SharedEncoder
}

// WithUserAgent sets the User-Agent of requests (default "kata-monitor";
// cmd passes "kata-monitor/<version>"). A User-Agent in the config's headers
// still wins.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// WithFlushDeadline sets how long requests in flight may run on after Run's
// context ends (default DefaultFlushDeadline).
func WithFlushDeadline(d time.Duration) Option { return func(o *options) { o.flushDeadline = d } }

// WithWALStream makes the queue tenant's reader of the shared WAL w
// (remotewrite/tenant opens one WAL per endpoint, OpenTenantWAL, and a
// queue per tenant on it) instead of the owner of its own WAL: it sends
// tenant's blocks, gets 1/share of the in-memory tail (at least 256 KiB),
// and what Stage holds is written by WriteStaged, with the other tenants',
// in one WAL write. Close detaches the queue from w, which stays open.
func WithWALStream(w *wal.Queue, tenant string, share int) Option {
	return func(o *options) { o.walShared, o.walTenant, o.walShare = w, tenant, max(share, 1) }
}

// SharedEncoder is one encoder for the queues of an endpoint's tenants:
// its buffers are sized for a full request (the marshalled request and
// the compressor's worst case, about 1.4 MiB at the defaults), which one
// encoder per tenant queue held for each of them. Encode calls through it
// are serialised, each one's output copied out before the next.
type SharedEncoder struct {
	mu  sync.Mutex
	enc *codec.Encoder
}

// NewSharedEncoder returns an encoder for the queues of endpoint cfg
// (defaulted and valid, as Prepare returns it): its
// max_samples_per_send and write_relabel_configs.
func NewSharedEncoder(cfg config.Config) (*SharedEncoder, error) {
	comp, err := codec.NewCompressor()
	if err != nil {
		return nil, err
	}
	return &SharedEncoder{enc: codec.NewEncoder(cfg.QueueConfig.MaxSamplesPerSend, cfg.WriteRelabelConfigs, comp)}, nil
}

// WithSharedEncoder makes the queue encode rounds with e instead of an
// encoder of its own (remotewrite/tenant: one per endpoint). e must have
// been built from the same endpoint config.
func WithSharedEncoder(e *SharedEncoder) Option { return func(o *options) { o.enc = e } }

// minSharedMemory is the least in-memory WAL tail a queue under
// WithWALStream gets.
const minSharedMemory = 256 << 10

// Queue is one remote_write endpoint: Append puts each scrape round into
// the endpoint's WAL, Run sends it. Append and AppendMetadata are safe to
// call concurrently with each other and with Run.
type Queue struct {
	cfg     config.Config
	logger  *slog.Logger
	metrics *send.Metrics
	wal     blockQueue
	sender  *send.Sender

	appendMu sync.Mutex // serialises rounds: WAL order is round order
	enc      *codec.Encoder
	encMu    *sync.Mutex // WithSharedEncoder: held from Encode until its output is copied
	comp     *codec.Compressor
	// staged are blocks Stage encoded and Commit has not written yet (a
	// copy of the encoder's output in stagedData), of stagedSeries series.
	staged       []wal.Block
	stagedData   []byte
	stagedSeries int              // of the open group (staged[sealedEnd:])
	stagedStats  codec.RoundStats // of the open group
	sealed       []stagedGroup    // groups before the open one (WithWALStream)
	// shared (WithWALStream): Stage seals a group at 8192 series instead
	// of writing it; WriteStaged writes them all. tenant is the stream's.
	shared bool
	tenant string
	// format is what the config asks for; once the sender fell back from
	// 2.0 (send.Sender.FellBack), new rounds are written as 1.0.
	format codec.Format

	mdMu   sync.Mutex
	md     []series.Metadata
	mdKick chan struct{} // cap 1: the first metadata set goes out at once

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool // set by Close: the WAL is released (readiness)

	mdLog *send.LogLimiter
	now   func() time.Time // the wall clock lag reads; replaced in tests
}

// stagedGroup is a group Stage sealed: its blocks end at staged[end].
type stagedGroup struct {
	end   int
	stats codec.RoundStats
}

// Prepare returns cfg with its defaults applied, validated together with
// walCfg: the errors New gives (each naming its key path, e.g.
// `remote_write "a": queue_config.max_backoff: ...` or `wal.dir: ...`).
// remotewrite/tenant's Router calls it before opening its tenants' queues.
func Prepare(cfg config.Config, walCfg config.WALConfig) (config.Config, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("remote_write %q: %w", cfg.Name, err)
	}
	if err := walCfg.Validate(); err != nil {
		return cfg, walError(err)
	}
	return cfg, nil
}

// prepare is Prepare plus the options applied and the endpoint's logger.
func prepare(cfg config.Config, walCfg config.WALConfig, logger *slog.Logger, opts []Option) (config.Config, options, *slog.Logger, error) {
	cfg, err := Prepare(cfg, walCfg)
	if err != nil {
		return cfg, options{}, nil, err
	}
	o := options{userAgent: "kata-monitor", flushDeadline: DefaultFlushDeadline}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return cfg, o, logger.With("endpoint", cfg.Name), nil
}

// New validates cfg (after applying defaults to a copy), builds the HTTP
// client and opens the endpoint's WAL in walCfg.Dir/<name> (or attaches
// to the stream WithWALStream names), taking its lock. It starts nothing. Metrics are registered on reg wrapped with the
// label endpoint=<name>; reg may be nil (no registration). The caller must
// call Run, or Close if it never will, to release the WAL.
func New(cfg config.Config, walCfg config.WALConfig, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Queue, error) {
	cfg, o, logger, err := prepare(cfg, walCfg, logger, opts)
	if err != nil {
		return nil, err
	}
	if cfg.Tenant != nil {
		return nil, fmt.Errorf("remote_write %q: tenant routing needs tenant.New (package remotewrite/tenant)", cfg.Name)
	}
	wc := walConfig(cfg, walCfg, filepath.Join(walCfg.Dir, cfg.Name))
	if o.walShared != nil {
		return openStream(cfg, o.walShared, max(sharedTailBytes(cfg)/int64(o.walShare), minSharedMemory), logger, reg, o)
	}
	return open(cfg, wc, logger, reg, o)
}

// sharedTailBytes sizes the in-memory WAL tail of the tenant streams of
// endpoint cfg from its queue_config: a stream of a shared WAL without one
// would read every tenant's records back from the segment. A plain queue
// keeps none (wal.DefaultMemoryBytes): its one reader reads the blocks
// just written back from the page cache.
func sharedTailBytes(cfg config.Config) int64 {
	return int64(cfg.QueueConfig.Capacity) * int64(cfg.QueueConfig.MaxShards) * bytesPerSample
}

// walConfig is the WAL of endpoint cfg in dir.
func walConfig(cfg config.Config, walCfg config.WALConfig, dir string) wal.Config {
	return wal.Config{
		Dir:     dir,
		Name:    cfg.Name,
		MaxSize: int64(walCfg.MaxSize),
		Fsync:   wal.FsyncPolicy(walCfg.Fsync),
	}
}

// TenantWALDir is the name of the directory, under wal.dir/<endpoint>/,
// of the WAL that an endpoint with tenant routing shares among its
// tenants. A '.' is always escaped in a tenant's directory name of the
// per-tenant layout before it (remotewrite/tenant), so they never collide.
const TenantWALDir = "tenants.wal"

// OpenTenantWAL opens the WAL that the tenants of endpoint cfg share,
// wal.dir/<name>/tenants.wal/, with the whole wal.max_size as its budget;
// Prepare's rules apply to cfg and walCfg. Its queues attach with
// WithWALStream; the caller closes it after them. Acknowledged positions
// are written at each acknowledgement to the fast ack file (no fsync) and
// for all tenants at once to the fsynced ack file at most ackInterval
// later (wal.Config.AckInterval; 0: the fsynced file at every
// acknowledgement). Its metrics
// (files, fsyncs) are registered on reg with the label endpoint=<name>.
func OpenTenantWAL(cfg config.Config, walCfg config.WALConfig, ackInterval time.Duration, logger *slog.Logger, reg prometheus.Registerer) (*wal.Queue, error) {
	cfg, err := Prepare(cfg, walCfg)
	if err != nil {
		return nil, err
	}
	wc := walConfig(cfg, walCfg, filepath.Join(walCfg.Dir, cfg.Name, TenantWALDir))
	wc.Tenants, wc.AckInterval = true, ackInterval
	w, err := wal.Open(wc, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("remote_write %q: open wal: %w", cfg.Name, err)
	}
	return w, nil
}

// openStream attaches a Queue to tenant's stream of the shared WAL w.
func openStream(cfg config.Config, w *wal.Queue, memory int64, logger *slog.Logger, reg prometheus.Registerer, o options) (*Queue, error) {
	rt, err := cfg.NewRoundTripper()
	if err != nil {
		return nil, fmt.Errorf("remote_write %q: %w", cfg.Name, err)
	}
	st, err := w.Stream(o.walTenant, memory, reg)
	if err != nil {
		return nil, fmt.Errorf("remote_write %q: %w", cfg.Name, err)
	}
	q, err := newQueue(cfg, st, rt, logger, reg, o)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("remote_write %q: %w", cfg.Name, err)
	}
	q.shared, q.tenant = true, o.walTenant
	return q, nil
}

// open builds the round tripper, opens the WAL wcfg and assembles the
// Queue (cfg defaulted and valid).
func open(cfg config.Config, wcfg wal.Config, logger *slog.Logger, reg prometheus.Registerer, o options) (*Queue, error) {
	rt, err := cfg.NewRoundTripper()
	if err != nil {
		return nil, fmt.Errorf("remote_write %q: %w", cfg.Name, err)
	}
	w, err := wal.Open(wcfg, logger, reg) // the WAL labels its metrics endpoint=<name> itself
	if err != nil {
		return nil, fmt.Errorf("remote_write %q: open wal: %w", cfg.Name, err)
	}
	q, err := newQueue(cfg, w, rt, logger, reg, o)
	if err != nil {
		// Handing the error back is the decision; the close error adds nothing.
		_ = w.Close()
		return nil, fmt.Errorf("remote_write %q: %w", cfg.Name, err)
	}
	return q, nil
}

// newQueue assembles a Queue around an open blockQueue; cfg must be
// defaulted and valid. Its metrics go on reg wrapped with
// endpoint=<name>.
func newQueue(cfg config.Config, bq blockQueue, rt http.RoundTripper, logger *slog.Logger, reg prometheus.Registerer, o options) (*Queue, error) {
	if reg != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"endpoint": cfg.Name}, reg)
	}
	comp, err := codec.NewCompressor()
	if err != nil {
		return nil, err
	}
	q := &Queue{
		cfg:    cfg,
		logger: logger,
		wal:    bq,
		comp:   comp,
		format: codec.FormatOf(cfg.ProtobufMessage, cfg.Compression),
		mdKick: make(chan struct{}, 1),
		mdLog:  send.NewLogLimiter(send.LogEvery, time.Now),
		now:    time.Now,
	}
	if o.enc != nil {
		q.enc, q.encMu = o.enc.enc, &o.enc.mu
	} else {
		q.enc = codec.NewEncoder(cfg.QueueConfig.MaxSamplesPerSend, cfg.WriteRelabelConfigs, comp)
	}
	// q is complete enough for lag before the gauge can be collected.
	m, err := send.NewMetrics(reg, q.lag)
	if err != nil {
		return nil, err
	}
	q.metrics = m
	q.sender = send.New(cfg, rt, comp, m, logger, send.Options{
		UserAgent:     o.userAgent,
		FlushDeadline: o.flushDeadline,
		OnFallback:    q.kickMetadata, // metadata now goes in its own requests
	})
	return q, nil
}

// Append queues one scrape round (or one chunk of one, see doc.go): it
// applies write_relabel_configs, cuts the series into blocks of at most
// max_samples_per_send samples (never splitting a series), encodes them in
// the endpoint's message and compression and appends them to the WAL as
// one group (with what Stage holds, if anything). It does not retain ss.
// It blocks only on the local disk, never on the receiver. Safe for
// concurrent use; concurrent rounds are queued in the order they take the
// lock.
func (q *Queue) Append(ctx context.Context, ss []series.Series) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.appendMu.Lock()
	defer q.appendMu.Unlock()
	if len(q.staged) > 0 {
		if err := q.stage(ss); err != nil {
			return err
		}
		return q.commit()
	}
	unlock := q.lockEncoder()
	defer unlock()
	blocks, st, err := q.encode(ss)
	if err != nil {
		return err
	}
	return q.write(blocks, st) // the WAL copies the blocks
}

// lockEncoder takes a shared encoder's lock; the returned func releases
// it. The encoder's output must be copied (stage, the WAL) before then.
func (q *Queue) lockEncoder() (unlock func()) {
	if q.encMu == nil {
		return func() {}
	}
	q.encMu.Lock()
	return q.encMu.Unlock
}

// maxStagedSeries is the most series one group written by Stage holds:
// the forwarder's chunk size, so a group has at most
// ceil(8192 / max_samples_per_send) blocks (doc.go, "Chunks, groups and
// shards").
const maxStagedSeries = 8192

// Stage is Append in parts: it encodes ss at once (ss is not retained) but
// holds the blocks and writes them as one group when 8,192 series are
// staged (ss is split there) or at Commit. A queue that gets one part of
// every chunk of a round (a tenant's, remotewrite/tenant) so writes its
// share in ceil(share/8192) groups, each one WAL write and one fsync under
// wal.fsync append, rather than one per chunk; blocks are still cut per
// call. What Stage holds is compressed (about 10 bytes a sample) and not in
// the WAL until written: Commit (or Append, or Close) must follow. Safe for
// concurrent use.
func (q *Queue) Stage(ctx context.Context, ss []series.Series) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.appendMu.Lock()
	defer q.appendMu.Unlock()
	var errs []error
	for len(ss) > 0 {
		part := ss[:min(len(ss), maxStagedSeries-q.stagedSeries)]
		ss = ss[len(part):]
		if err := q.stage(part); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if q.stagedSeries >= maxStagedSeries {
			if q.shared {
				q.seal()
				continue
			}
			errs = append(errs, q.commit())
		}
	}
	return errors.Join(errs...)
}

// Commit writes what Stage holds to the WAL as one group; nil when it is
// written (or nothing was staged). Safe for concurrent use.
func (q *Queue) Commit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.appendMu.Lock()
	defer q.appendMu.Unlock()
	return q.commit()
}

// encode encodes ss into blocks valid until the next encode (appendMu
// held), counting series write_relabel_configs dropped.
func (q *Queue) encode(ss []series.Series) ([]wal.Block, codec.RoundStats, error) {
	blocks, st, err := q.enc.Encode(ss, q.currentFormat())
	if err != nil {
		return nil, st, fmt.Errorf("encode round: %w", err)
	}
	if st.DroppedRelabel > 0 {
		q.metrics.DroppedByRelabel(st.DroppedRelabel)
	}
	return blocks, st, nil
}

// stage encodes ss and adds copies of its blocks to the staged ones
// (appendMu held).
func (q *Queue) stage(ss []series.Series) error {
	unlock := q.lockEncoder()
	defer unlock()
	blocks, st, err := q.encode(ss)
	if err != nil {
		return err
	}
	if len(q.staged) == q.sealedEnd() {
		q.stagedStats = codec.RoundStats{MaxTimestamp: math.MinInt64}
	}
	for _, b := range blocks {
		// Earlier staged blocks keep the old array if this grows it;
		// nothing writes there again until commit empties the stage.
		at := len(q.stagedData)
		q.stagedData = append(q.stagedData, b.Data...)
		b.Data = q.stagedData[at:len(q.stagedData):len(q.stagedData)]
		q.staged = append(q.staged, b)
	}
	q.stagedSeries += len(ss)
	q.stagedStats.Samples += st.Samples
	q.stagedStats.MaxTimestamp = max(q.stagedStats.MaxTimestamp, st.MaxTimestamp)
	return nil
}

// sealedEnd is where the open group starts in staged (appendMu held).
func (q *Queue) sealedEnd() int {
	if len(q.sealed) == 0 {
		return 0
	}
	return q.sealed[len(q.sealed)-1].end
}

// seal closes the open group, if it has blocks (appendMu held).
func (q *Queue) seal() {
	if len(q.staged) > q.sealedEnd() {
		q.sealed = append(q.sealed, stagedGroup{end: len(q.staged), stats: q.stagedStats})
	}
	q.stagedSeries = 0
}

// commit writes the staged groups, each as one WAL group, and empties the
// stage, whether or not the writes succeeded (a failed write counts its
// blocks as dropped: write_error) (appendMu held).
func (q *Queue) commit() error {
	q.seal()
	var errs []error
	start := 0
	for _, g := range q.sealed {
		errs = append(errs, q.write(q.staged[start:g.end], g.stats))
		start = g.end
	}
	q.resetStage()
	return errors.Join(errs...)
}

// resetStage empties the stage (appendMu held).
func (q *Queue) resetStage() {
	clear(q.staged)
	q.staged, q.stagedData, q.stagedSeries, q.sealed = q.staged[:0], q.stagedData[:0], 0, q.sealed[:0]
}

// WriteStaged writes what Stage holds in each of qs (queues attached to
// w with WithWALStream, whose Stage calls the caller has serialised with
// this call) to w in one AppendGroups: one WAL write and, under
// wal.fsync append, one fsync for every tenant, where a Commit per queue
// costs one each (issue 16: that fsync was most of what routing cost). It
// empties their stages whatever happens; on a write error every staged
// block is counted dropped (write_error) on its tenant's stream. When it
// returns nil, every staged block is in the WAL.
func WriteStaged(w *wal.Queue, qs []*Queue) error {
	var groups [][]wal.Block
	for _, q := range qs {
		q.appendMu.Lock()
		defer q.appendMu.Unlock()
		q.seal()
		start := 0
		for _, g := range q.sealed {
			blocks := q.staged[start:g.end]
			for i := range blocks {
				blocks[i].Tenant = q.tenant
			}
			groups = append(groups, blocks)
			start = g.end
		}
	}
	err := w.AppendGroups(groups)
	for _, q := range qs {
		if err == nil {
			for _, g := range q.sealed {
				q.metrics.Appended(g.stats.Samples, g.stats.MaxTimestamp)
			}
		}
		q.resetStage()
	}
	if err != nil {
		return fmt.Errorf("wal append: %w", err)
	}
	return nil
}

// write appends blocks to the WAL as one group (appendMu held).
func (q *Queue) write(blocks []wal.Block, st codec.RoundStats) error {
	if len(blocks) == 0 {
		return nil
	}
	if err := q.wal.Append(blocks); err != nil {
		return fmt.Errorf("wal append: %w", err)
	}
	q.metrics.Appended(st.Samples, st.MaxTimestamp)
	return nil
}

// PendingBlocks is the number of blocks appended and not yet
// acknowledged (the WAL's pending blocks). Safe for concurrent use.
func (q *Queue) PendingBlocks() int { return q.wal.Stats().PendingBlocks }

// Run sends queued blocks until ctx ends, then stops softly: no new group
// is started, requests in flight get up to the flush deadline, the blocks
// that made it are acknowledged, and the WAL is closed. Unsent blocks stay
// in the WAL for the next start. It also runs the metadata loop. Run
// returns nil after a clean stop, or an error if the WAL fails; in both
// cases every goroutine it started has exited. Call it once.
func (q *Queue) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return q.sender.Run(gctx, q.wal) })
	if *q.cfg.MetadataConfig.Send {
		g.Go(func() error { return q.metadataLoop(gctx) })
	}
	err := g.Wait()
	if cerr := q.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Ready reports whether the queue can take rounds: nil from New (which
// opens the WAL) until Close, then an error saying the WAL is closed. For
// readiness probes; safe for concurrent use.
func (q *Queue) Ready() error {
	if q.closed.Load() {
		return errors.New("wal closed")
	}
	return nil
}

// Close writes what Stage holds, releases the WAL, unregisters the
// metrics and closes the idle connections to the receiver, so the
// endpoint can be opened again. Run calls it on return;
// call it directly only if Run will not be called. Idempotent; Append fails afterwards.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.appendMu.Lock()
		if err := q.commit(); err != nil {
			q.logger.Error("cannot write what was staged while closing", "err", err)
		}
		q.appendMu.Unlock()
		q.closed.Store(true)
		q.metrics.Unregister()
		// Run has stopped the sender (no request in flight): its
		// connections would stay open until the transport's idle
		// timeout, one set per tenant queue closed and reopened.
		q.sender.CloseIdleConnections()
		if err := q.wal.Close(); err != nil {
			q.closeErr = fmt.Errorf("close wal: %w", err)
		}
	})
	return q.closeErr
}

// currentFormat is the format new rounds are written in: the config's,
// without 2.0 once the endpoint fell back.
func (q *Queue) currentFormat() codec.Format {
	if q.sender.FellBack() {
		return q.format &^ codec.FormatV2
	}
	return q.format
}

// lag is the age in seconds of the oldest sample not yet sent or
// dropped, on the wall clock: 0 only when nothing is pending (or the
// oldest pending sample has a future timestamp). It is read from the WAL,
// so it counts from the first round appended and survives restarts.
func (q *Queue) lag() float64 {
	st := q.wal.Stats()
	if st.PendingBlocks == 0 {
		return 0
	}
	return max(0, float64(q.now().UnixMilli()-st.OldestPending)/1e3)
}

var _ blockQueue = (*wal.Queue)(nil)

// walError prefixes each problem of a WALConfig.Validate error with "wal.",
// so every line names its key path when the queue is opened directly.
func walError(err error) error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return fmt.Errorf("wal.%w", err)
	}
	var errs []error
	for _, e := range joined.Unwrap() {
		errs = append(errs, fmt.Errorf("wal.%w", e))
	}
	return errors.Join(errs...)
}
