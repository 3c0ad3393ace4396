package send

import (
	"context"
	"errors"
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/send/client"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
	"github.com/kata-containers/kata-monitor/remotewrite/wal"
)

// retryAfterCapFactor bounds a receiver's Retry-After hint to this many
// MaxBackoff, so one odd answer cannot park the queue for hours.
const retryAfterCapFactor = 10

// part is one request being delivered: a whole WAL block, or a piece of
// one after a split. series is nil until the part has to be decoded.
type part struct {
	data    []byte
	format  codec.Format
	samples int
	maxTs   int64 // newest sample (ms)
	series  []series.Series
}

// decoded returns the part's series, decoding its data the first time.
func (s *Sender) decoded(p *part) ([]series.Series, error) {
	if p.series == nil {
		ss, err := s.comp.DecodeRequest(p.data, p.format)
		if err != nil {
			return nil, err
		}
		p.series = ss
	}
	return p.series, nil
}

// tally is what became of one block's samples. It reaches the metrics only
// once the whole block is done: a shutdown in the middle of a split leaves
// the block in the WAL, to be sent whole after the next start, and its
// samples must not be counted twice.
type tally struct {
	sent, bytes                   int
	refused, tooLarge, notRetried int
	// partial is samples a receiver answered 2xx to but, by its Written
	// headers, did not write (remote write 2.0 only).
	partial   int
	maxSentTs int64
	// splits left for refusals (400, 409, 422) in this block: see
	// refusalSplitBudget.
	splitsLeft int
	// refusedBy counts refused samples by the reason the receiver's
	// answer gives (client.RefusalReason), beside refused (unclassified).
	refusedBy map[string]int
	// unexplained is the part of refused that the receiver refused
	// (decodable requests, answers naming no cause): see sendBlock.
	unexplained int
}

// refuse counts n samples refused for reason.
func (t *tally) refuse(reason string, n int) {
	if reason == client.ReasonRefused {
		t.refused += n
		return
	}
	if t.refusedBy == nil {
		t.refusedBy = map[string]int{}
	}
	t.refusedBy[reason] += n
}

// refuseAnswer counts n samples of a decodable request refused by the
// receiver for reason; those refused without a cause are also unexplained.
func (t *tally) refuseAnswer(reason string, n int) {
	t.refuse(reason, n)
	if reason == client.ReasonRefused {
		t.unexplained += n
	}
}

// isolateSeries is how many refused series per block the split isolates
// exactly. A receiver that refuses (almost) everything, such as
// Prometheus answering "out of bounds" to a backlog older than its head
// block, would otherwise cost about two requests per series; past this
// budget a refused part is dropped whole.
const isolateSeries = 8

// refusalSplitBudget is the number of splits a block of samples samples
// may spend on refusals: isolateSeries times the depth of the split tree.
func refusalSplitBudget(samples int) int {
	return isolateSeries * (bits.Len(uint(max(samples, 1))) + 1)
}

// sendBlock delivers one block and reports whether it is done: every
// sample sent or dropped on purpose (see deliver). It returns false only
// when the caller is shutting down: stop (the Run context) ends the waits
// between attempts, and sendCtx (stop plus the flush deadline) ends an
// attempt in flight. A block not done stays in the WAL for the next start.
//
// A split shows that the data itself is refused only when some of the
// block gets through. When every part down to single series is refused
// and no answer names a cause (client.RefusalReason), nothing shows the data is
// at fault: a wrong url, a gateway or a proxy answers 400 to everything
// alike. Such a block is not dropped: it is retried whole, with backoff,
// visibly (samples_failed_total, failing_since, a rate-limited log line),
// until the endpoint takes some of it or names a cause. A split costs
// about 2*log2(n) requests per refused series, so while the endpoint
// refuses everything only every splitProbeEvery-th retry splits again;
// the others send the block whole, one request.
func (s *Sender) sendBlock(stop, sendCtx context.Context, b wal.Block) bool {
	var bo *backoff.ExponentialBackOff
	for cycle := 0; ; cycle++ {
		t := tally{maxSentTs: math.MinInt64, splitsLeft: refusalSplitBudget(b.Samples)}
		if cycle%splitProbeEvery != 0 {
			t.splitsLeft = 0
		}
		if !s.deliver(stop, sendCtx, b.Seq, part{data: b.Data, format: codec.Format(b.Format) & codec.FormatMask, samples: b.Samples, maxTs: b.MaxTimestamp}, &t) {
			return false
		}
		if t.unexplained < b.Samples {
			s.metrics.commit(t)
			return true
		}
		if bo == nil {
			bo = s.newBackoff()
		}
		wait := min(bo.NextBackOff(), time.Duration(s.cfg.QueueConfig.MaxBackoff))
		s.metrics.failed.Add(float64(b.Samples))
		s.metrics.failing(time.Now())
		if ok, suppressed := s.retryLog.Allow(); ok {
			s.logger.Warn("receiver refused every series of this request without naming a cause; that is not shown to be about the data (a wrong url or a gateway answers so too): kept, will retry",
				"seq", b.Seq, "samples", b.Samples, "retry_in", wait, "suppressed", suppressed)
		}
		if err := sleepCtx(stop, wait); err != nil {
			return false
		}
	}
}

// splitProbeEvery is how often (in retries of a block refused whole
// without a cause) the block is split again to look for what the
// receiver takes; see sendBlock.
const splitProbeEvery = 8

// newBackoff is the endpoint's retry schedule: min_backoff doubling up to
// max_backoff, 10% jitter, forever.
func (s *Sender) newBackoff() *backoff.ExponentialBackOff {
	qc := s.cfg.QueueConfig
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Duration(qc.MinBackoff)),
		backoff.WithMaxInterval(time.Duration(qc.MaxBackoff)),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.1),
		backoff.WithMaxElapsedTime(0),
	)
}

// deliver sends p, applying the status policy (client.StatusAction):
//
//   - retry: resend p itself with backoff until it is answered otherwise;
//   - refused (400, 409, 422): split p in two halves by series and deliver
//     each, so only the series the receiver refuses on their own are
//     dropped (reason "refused"). k refused series among n cost about
//     2*k*log2(n) extra requests; past isolateSeries series' worth of
//     splits in one block, a refused part is dropped whole;
//   - too large (413): lower the endpoint's request size to half of p
//     (not below minTooLargeSamples) and deliver the halves; a single
//     series refused for size is dropped (reason "too_large"); a part of
//     at most minTooLargeSamples samples is retried instead (see attempt);
//   - 429 with retry_on_http_429 false: drop p (reason "http_429").
//
// Parts larger than the lowered request size are cut before sending. The
// halves are sent one after the other, inside the block's slot: the group
// waits for them, so no later round overtakes a series. A 2.0 part is sent
// as 1.0 (transcoded) once the endpoint fell back (see fallBack). It
// returns false on shutdown only.
func (s *Sender) deliver(stop, sendCtx context.Context, seq uint64, p part, t *tally) bool {
	if p.format.V2() && s.fellBack.Load() {
		return s.transcode(stop, sendCtx, seq, p, t)
	}
	if chunks := s.cutToLimit(&p); chunks != nil {
		return s.deliverEach(stop, sendCtx, seq, chunks, p.format, t)
	}
	w, err := s.attempt(stop, sendCtx, seq, p)
	if err == nil {
		s.delivered(seq, p, w, t)
		return true
	}
	var uerr client.UnsupportedError
	if errors.As(err, &uerr) {
		s.fallBack(uerr)
		return s.deliver(stop, sendCtx, seq, p, t)
	}
	var herr client.StatusError
	if !errors.As(err, &herr) {
		return false // shutdown cancelled the attempt or its wait
	}
	return s.answered(stop, sendCtx, seq, p, herr, t)
}

// transcode delivers a queued 2.0 part as 1.0, the endpoint having fallen
// back; a part that cannot be decoded is dropped (counted as refused).
func (s *Sender) transcode(stop, sendCtx context.Context, seq uint64, p part, t *tally) bool {
	ss, err := s.decoded(&p)
	if err != nil {
		t.refused += p.samples
		s.logger.Error("cannot decode a queued 2.0 request to send it as 1.0, dropped", "err", err, "seq", seq, "samples", p.samples)
		return true
	}
	return s.deliverEach(stop, sendCtx, seq, [][]series.Series{ss}, p.format&^codec.FormatV2, t)
}

// cutToLimit returns p's series in runs of at most the endpoint's current
// request size (lowered by 413 answers), or nil when p fits or cannot be
// cut (one series, or undecodable).
func (s *Sender) cutToLimit(p *part) [][]series.Series {
	limit := int(s.sendLimit.Load())
	if p.samples <= limit {
		return nil
	}
	if ss, err := s.decoded(p); err == nil && len(ss) > 1 {
		if chunks := codec.ChunkBySamples(ss, limit); len(chunks) > 1 {
			return chunks
		}
	}
	return nil
}

// delivered counts p as sent after a 2xx answer, but for the samples a
// 2.0 receiver says (Written headers) it did not write: those are counted
// as dropped, reason receiver_partial_write, and logged, never silent.
func (s *Sender) delivered(seq uint64, p part, w client.Written, t *tally) {
	n := p.samples
	if w.Known && w.Samples < int64(n) {
		lost := n - int(w.Samples)
		n -= lost
		t.partial += lost
		s.logPartial(seq, p, w)
	}
	if p.format.V2() {
		s.confirmedV2.Store(true)
	}
	t.sent += n
	t.bytes += len(p.data)
	t.maxSentTs = max(t.maxSentTs, p.maxTs)
}

// answered acts on an answer that is neither a delivery nor a retry (see
// deliver): fall back to 1.0 on a 400 that means the receiver cannot read
// 2.0, drop on a 429 not to retry, or split p and deliver the halves, down
// to the series the receiver refuses (dropRefused).
func (s *Sender) answered(stop, sendCtx context.Context, seq uint64, p part, herr client.StatusError, t *tally) bool {
	act := client.StatusAction(herr.Code, *s.cfg.QueueConfig.RetryOnHTTP429, p.format.V2())
	if act == client.ActRefused && p.format.V2() && !s.confirmedV2.Load() && herr.Code == http.StatusBadRequest && !herr.Written.Known {
		// The specification: "Senders SHOULD expect 400 ... from 1.x
		// Receivers" for a message they cannot read. Before any 2.0
		// request was written, a 400 without Written headers is taken as
		// that, not as a refusal of the data: fall back, resend as 1.0.
		s.fallBack(client.UnsupportedError{Err: herr})
		return s.deliver(stop, sendCtx, seq, p, t)
	}
	if act == client.ActDrop {
		t.notRetried += p.samples
		s.logDrop("receiver throttled and retry_on_http_429 is false, dropped", herr, seq, p, nil)
		return true
	}
	ts, derr := s.decoded(&p)
	if s.dropRefused(act, herr, seq, p, ts, derr, t) {
		return true
	}
	if act == client.ActTooLarge {
		s.lowerSendLimit(max(minTooLargeSamples, p.samples/2), herr)
	} else {
		t.splitsLeft--
	}
	s.metrics.splits.WithLabelValues(strconv.Itoa(herr.Code)).Inc()
	mid := len(ts) / 2
	return s.deliverEach(stop, sendCtx, seq, [][]series.Series{ts[:mid], ts[mid:]}, p.format, t)
}

// dropRefused drops p, counted by reason, when it is not to be split
// further: the split budget is spent (refusals only), or p is a single
// series or cannot be decoded. It reports whether it dropped p.
func (s *Sender) dropRefused(act client.Action, herr client.StatusError, seq uint64, p part, ts []series.Series, derr error, t *tally) bool {
	reason := client.RefusalReason(herr.Body)
	switch {
	case act == client.ActRefused && t.splitsLeft <= 0 && derr == nil && len(ts) > 1:
		t.refuseAnswer(reason, p.samples)
		s.logDrop("receiver refuses most of this request; split budget spent, dropped the refused part whole (kept and retried instead if it refuses the whole request without a cause)", herr, seq, p, nil)
	case derr == nil && len(ts) > 1:
		return false
	case act == client.ActTooLarge:
		t.tooLarge += p.samples
		s.logDrop("receiver refused a single series as too large (413), dropped", herr, seq, p, derr)
	case derr != nil:
		t.refuse(reason, p.samples)
		s.logDrop("receiver refused series, dropped", herr, seq, p, derr)
	default:
		t.refuseAnswer(reason, p.samples)
		s.logDrop("receiver refused series, dropped (kept and retried instead if it refuses the whole request without a cause)", herr, seq, p, derr)
	}
	return true
}

// deliverEach encodes parts in format f and delivers them in order; false
// on shutdown.
func (s *Sender) deliverEach(stop, sendCtx context.Context, seq uint64, parts [][]series.Series, f codec.Format, t *tally) bool {
	for _, ss := range parts {
		data, err := s.comp.EncodeRequest(ss, f)
		if err != nil {
			// Series decoded from a request always encode again; this is
			// a bug, not a receiver's answer: count and say so.
			n := series.Count(ss)
			t.refused += n
			s.logger.Error("cannot encode a split request, dropped", "err", err, "seq", seq, "samples", n)
			continue
		}
		p := part{data: data, format: f, samples: series.Count(ss), series: ss, maxTs: math.MinInt64}
		for i := range ss {
			_, hi := codec.TimeRange(&ss[i])
			p.maxTs = max(p.maxTs, hi)
		}
		if !s.deliver(stop, sendCtx, seq, p, t) {
			return false
		}
	}
	return true
}

// attempt sends p until it is answered with anything but a retry: it
// returns nil (2xx) with what the receiver says it wrote, an
// client.StatusError or client.UnsupportedError (an answer the caller acts on), or
// another error when stop or sendCtx ended. Every failed attempt is
// visible: samples_failed_total, requests_total{code}, the failing_since
// gauge and a rate-limited log line. The endpoint's rate cap
// (queue_config.max_bytes_per_second) is waited for before every attempt.
func (s *Sender) attempt(stop, sendCtx context.Context, seq uint64, p part) (client.Written, error) {
	qc := s.cfg.QueueConfig
	bo := s.newBackoff()
	for n := 0; ; n++ {
		if n > 0 {
			s.metrics.retried.Add(float64(p.samples))
		}
		if err := s.waitRate(stop, len(p.data)); err != nil {
			return client.Written{}, err
		}
		w, err := s.client.Send(sendCtx, p.data, p.format)
		if err == nil {
			s.metrics.succeeded(time.Now())
			return w, nil
		}
		var rerr client.RecoverableError
		var herr client.StatusError
		switch {
		case errors.As(err, &rerr):
		case errors.As(err, &herr) && herr.Code == http.StatusRequestEntityTooLarge && p.samples <= minTooLargeSamples:
			// So small a request is not refused for its size (a proxy
			// or ingress answering 413 to everything): splitting it
			// would drop every series as too_large. Retry it.
			rerr = client.RecoverableError{Err: herr}
		default:
			return w, err
		}
		s.metrics.failed.Add(float64(p.samples))
		s.metrics.failing(time.Now())
		wait := rerr.RetryAfter
		if wait > 0 {
			wait = min(wait, retryAfterCapFactor*time.Duration(qc.MaxBackoff))
		} else {
			wait = min(bo.NextBackOff(), time.Duration(qc.MaxBackoff))
		}
		if ok, suppressed := s.retryLog.Allow(); ok {
			s.logger.Warn("send failed, will retry", "err", err, "seq", seq,
				"samples", p.samples, "retry_in", wait, "suppressed", suppressed)
		}
		if err := sleepCtx(stop, wait); err != nil {
			return client.Written{}, err
		}
	}
}

// minTooLargeSamples is the smallest request (in samples) a 413 answer is
// taken to be about: the endpoint's request size is never lowered below
// it, and a request of at most this many samples answered 413 is retried
// with backoff like a 5xx instead of split, so a receiver or proxy that
// answers 413 to every request (a misconfigured body limit) delays the
// data instead of dropping it all as too_large and leaving the endpoint at
// one sample per request. A single series of more samples refused as too
// large is still dropped.
const minTooLargeSamples = 100

// lowerSendLimit makes limit the endpoint's request size (in samples) if
// it is below the current one, and says so once per change.
func (s *Sender) lowerSendLimit(limit int, herr client.StatusError) {
	for {
		cur := s.sendLimit.Load()
		if int64(limit) >= cur {
			return
		}
		if s.sendLimit.CompareAndSwap(cur, int64(limit)) {
			s.metrics.sendLimit.Set(float64(limit))
			s.logger.Warn("receiver refused a request as too large; sending smaller requests from now on",
				"code", herr.Code, "answer", herr.Body, "max_samples_per_send", limit, "was", cur)
			return
		}
	}
}

// logDrop logs a deliberate drop, at most once per LogEvery.
func (s *Sender) logDrop(msg string, herr client.StatusError, seq uint64, p part, decodeErr error) {
	ok, suppressed := s.dropLog.Allow()
	if !ok {
		return
	}
	args := []any{"code", herr.Code, "answer", herr.Body, "seq", seq, "samples", p.samples, "suppressed", suppressed}
	if len(p.series) == 1 {
		args = append(args, "series", seriesString(p.series[0].AppendLabels(nil)))
	}
	if decodeErr != nil {
		args = append(args, "decode_err", decodeErr)
	}
	s.logger.Error(msg, args...)
}

// logPartial says, at most once per LogEvery, that a receiver wrote fewer
// samples than a 2xx answer covered.
func (s *Sender) logPartial(seq uint64, p part, w client.Written) {
	if ok, suppressed := s.dropLog.Allow(); ok {
		s.logger.Error("receiver answered 2xx but wrote fewer samples than sent (X-Prometheus-Remote-Write-Samples-Written); the rest are counted as dropped, reason receiver_partial_write",
			"seq", seq, "sent", p.samples, "written", w.Samples, "suppressed", suppressed)
	}
}

// seriesString renders labels as {a="b", ...} for logs.
func seriesString(ls []labels.Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// sleepCtx waits d or until ctx ends, whichever is first. Tests run the
// waits in a testing/synctest bubble, where they take no real time.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
