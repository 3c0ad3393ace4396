package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kata-containers/kata-monitor/sources/sandbox"
)

// metricsDeadline bounds one /metrics response: a scrape round plus writing.
const metricsDeadline = 60 * time.Second

// maxPooledBuffer keeps one huge response from pinning its buffer forever.
const maxPooledBuffer = 16 << 20

// textContentType is what upstream serves for the text exposition.
const textContentType = "text/plain; version=" + expfmt.TextVersion + "; charset=utf-8"

// fmtTextUTF8 is the text format as Prometheus 3 asks for it with UTF-8
// names (its PrometheusText1.0.0 scrape protocol,
// "text/plain;version=1.0.0;escaping=allow-utf-8"): the same syntax as
// 0.0.4 with quoted names.
const fmtTextUTF8 expfmt.Format = "text/plain; version=1.0.0; charset=utf-8"

// negotiate picks the format of a merged /metrics answer from Accept, as
// promhttp does (expfmt.NegotiateAccept over the protobuf formats and the
// text format, plus text 1.0.0). The escaping term comes from the matching
// Accept clause (allow-utf-8, underscores, dots, values); a client that
// names none, e.g. Prometheus 2, gets model.NameEscapingScheme
// (underscores), so names outside the legacy charset never reach a client
// that cannot read them.
func negotiate(h http.Header) expfmt.Format {
	return expfmt.NegotiateAccept(h, append(expfmt.DefaultAcceptedFormats(), fmtTextUTF8)...)
}

// isText reports whether format is the text format, 0.0.4 or 1.0.0
// (expfmt's FormatType knows only the former).
func isText(format expfmt.Format) bool {
	return format.FormatType() == expfmt.TypeTextPlain || strings.HasPrefix(string(format), string(fmtTextUTF8))
}

// textType is the Content-Type of a text answer in format: upstream's, or
// version 1.0.0 when that was asked for, with the escaping term as
// promhttp sends it.
func textType(format expfmt.Format) string {
	ct := textContentType
	if format.Version() == "1.0.0" {
		ct = string(fmtTextUTF8)
	}
	return ct + "; escaping=" + format.ToEscapingScheme().String()
}

// pools are per-API (not package-level) reusable buffers and deflate
// writers (gzhttp pools its own gzip writers).
type pools struct {
	buf   sync.Pool // *bytes.Buffer
	raw   sync.Pool // *[]byte, for Shim.Metrics
	flate sync.Pool // *flate.Writer, for the gzip cache
}

func newPools() *pools {
	return &pools{
		buf: sync.Pool{New: func() any { return new(bytes.Buffer) }},
		raw: sync.Pool{New: func() any { return new([]byte) }},
		flate: sync.Pool{New: func() any {
			zw, _ := flate.NewWriter(nil, flate.BestSpeed) // the level is valid: no error
			return zw
		}},
	}
}

func (p *pools) getBuf() *bytes.Buffer { return p.buf.Get().(*bytes.Buffer) }

func (p *pools) putBuf(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	p.buf.Put(b)
}

// serveMetrics answers /metrics: one shim's exposition as it served it with
// ?sandbox=ID, else the merged exposition plus, without filter_family,
// kata-monitor's own families. The merged text is streamed from the
// forwarder's snapshot, never copied whole; gzip responses without
// filter_family reuse the snapshot's shared compression (gzipcache.go).
func (a *API) serveMetrics(w http.ResponseWriter, r *http.Request) {
	setWriteDeadline(w, metricsDeadline)
	q, ok := a.parseQuery(w, r)
	if !ok {
		return
	}
	if _, ok := q["sandbox"]; ok {
		a.serveSandboxMetrics(w, r, q)
		return
	}
	prefixes := familyPrefixes(q)
	format := negotiate(r.Header)
	if !isText(format) {
		a.serveReencoded(w, r, prefixes, format)
		return
	}
	scheme := format.ToEscapingScheme()
	gz := gzipChosen(w)
	started := false
	err := a.deps.Metrics.View(r.Context(), scheme, func(round uint64, write func(io.Writer, []string) error) error {
		started = true
		// Gathered after the round, so its counters include it.
		own := a.ownText(prefixes)
		defer a.pools.putBuf(own)
		w.Header().Set("Content-Type", textType(format))
		if gz && len(prefixes) == 0 {
			body := a.gzip.get(r.Context(), round, func(w io.Writer) error { return write(w, nil) })
			if body != nil && body.err == nil {
				// An encoding already set makes gzhttp pass the bytes through.
				w.Header().Set("Content-Encoding", "gzip")
				w.WriteHeader(http.StatusOK)
				return writeGzip(w, body, own.Bytes())
			}
		}
		// Plain, or compressed by gzhttp on the way.
		w.WriteHeader(http.StatusOK)
		if err := write(w, prefixes); err != nil {
			return err
		}
		_, err := w.Write(own.Bytes())
		return err
	})
	switch {
	case err != nil && !started:
		a.logger.Warn("write merged metrics", "err", err)
		writeText(w, http.StatusServiceUnavailable, "metrics unavailable\n")
	case err != nil: // the status line is out: the client left or timed out
		a.logger.Debug("stream merged metrics", "err", err)
	}
}

// ownText renders kata-monitor's own families as text, none when prefixes
// filter the response (upstream's filter_family leaves them out). The
// buffer is the caller's to return with putBuf.
func (a *API) ownText(prefixes []string) *bytes.Buffer {
	buf := a.pools.getBuf()
	if len(prefixes) > 0 {
		return buf
	}
	enc := expfmt.NewEncoder(buf, expfmt.FmtText)
	for _, f := range a.gatherOwn() {
		if err := enc.Encode(f); err != nil {
			a.logger.Warn("encode own metrics", "family", f.GetName(), "err", err)
		}
	}
	return buf
}

// gatherOwn returns kata-monitor's own families (nil without a Gatherer).
func (a *API) gatherOwn() []*dto.MetricFamily {
	if a.deps.Gatherer == nil {
		return nil
	}
	fams, err := a.deps.Gatherer.Gather()
	if err != nil {
		// Gather returns what it could; serve that, as promhttp's
		// ContinueOnError does, rather than hiding the shims' series.
		a.logger.Warn("gather own metrics", "err", err)
	}
	return fams
}

// serveReencoded is /metrics in a negotiated non-text format (protobuf):
// rare, so it renders the text into memory and re-encodes it.
func (a *API) serveReencoded(w http.ResponseWriter, r *http.Request, prefixes []string, format expfmt.Format) {
	buf := a.pools.getBuf()
	defer a.pools.putBuf(buf)
	var own []*dto.MetricFamily
	// The text is rendered in UTF-8 syntax; the encoder escapes names by
	// the negotiated scheme.
	err := a.deps.Metrics.View(r.Context(), model.NoEscaping, func(_ uint64, write func(io.Writer, []string) error) error {
		if err := write(buf, prefixes); err != nil {
			return err
		}
		if len(prefixes) == 0 {
			own = a.gatherOwn()
		}
		return nil
	})
	if err != nil {
		a.logger.Warn("write merged metrics", "err", err)
		writeText(w, http.StatusServiceUnavailable, "metrics unavailable\n")
		return
	}
	out := a.pools.getBuf()
	defer a.pools.putBuf(out)
	if err := reencode(out, buf, own, format); err != nil {
		a.logger.Warn("re-encode metrics", "format", string(format), "err", err)
		writeText(w, http.StatusInternalServerError, "cannot encode metrics\n")
		return
	}
	a.writeBody(w, string(format), out.Bytes())
}

// serveSelf answers /metrics/self: only kata-monitor's own families, in
// the negotiated format, without touching a shim or a snapshot. It is the
// cheap way to watch kata-monitor itself (the PodMonitor, the benchmark).
func (a *API) serveSelf(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.parseQuery(w, r); !ok {
		return
	}
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	buf := a.pools.getBuf()
	defer a.pools.putBuf(buf)
	if err := reencode(buf, &bytes.Buffer{}, a.gatherOwn(), format); err != nil {
		a.logger.Warn("encode own metrics", "format", string(format), "err", err)
		writeText(w, http.StatusInternalServerError, "cannot encode metrics\n")
		return
	}
	ct := string(format)
	if format.FormatType() == expfmt.TypeTextPlain {
		ct = textContentType
	}
	a.writeBody(w, ct, buf.Bytes())
}

// reencode is the slow path for non-text formats: parse the merged text and
// encode it, then own, in format.
func reencode(out, text *bytes.Buffer, own []*dto.MetricFamily, format expfmt.Format) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := p.TextToMetricFamilies(text)
	if err != nil {
		return fmt.Errorf("parse merged text: %w", err)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	enc := expfmt.NewEncoder(out, format)
	for _, n := range names {
		if err := enc.Encode(byName[n]); err != nil {
			return fmt.Errorf("encode %s: %w", n, err)
		}
	}
	for _, f := range own {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("encode %s: %w", f.GetName(), err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("close encoder: %w", err)
		}
	}
	return nil
}

// serveSandboxMetrics answers one shim's exposition unchanged (upstream's
// ?sandbox=ID), with the shim's Content-Type. The shim is asked as a scrape
// asks (text first, then OpenMetrics; gzip decoded); a shim error,
// including an encoding the scrape did not ask for, is a 502: the shim, not
// the request, failed.
func (a *API) serveSandboxMetrics(w http.ResponseWriter, r *http.Request, q url.Values) {
	sb, ok := a.sandboxFromQuery(w, q)
	if !ok {
		return
	}
	raw := a.pools.raw.Get().(*[]byte)
	defer func() {
		if cap(*raw) <= maxPooledBuffer {
			a.pools.raw.Put(raw)
		}
	}()
	body, ct, err := a.deps.Shims.Shim(sb.Socket).Scrape(r.Context(), *raw)
	*raw = body[:0] // keep the grown backing array for the next request
	if err != nil {
		a.logger.Warn("shim metrics", sandbox.LogKey, sb.ID, "err", err)
		writeText(w, http.StatusBadGateway, "shim metrics unavailable\n")
		return
	}
	if ct == "" { // what upstream assumes of a shim
		ct = "text/plain; version=" + expfmt.TextVersion
	}
	// The body is as the shim served it, decoded: its Content-Type goes
	// with it, and Content-Encoding says only what writeBody applies.
	a.writeBody(w, ct, body)
}

// writeBody writes a complete 200 body (gzhttp compresses it for a client
// that accepts gzip).
func (a *API) writeBody(w http.ResponseWriter, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(body); err != nil {
		a.logger.Debug("write body", "err", err) // the client left
	}
}

// newGzipWrap returns the Accept-Encoding negotiation and gzip compression
// of the routes that serve expositions and pages: klauspost/compress's
// gzhttp at BestSpeed, every size (as promhttp compresses), gzip only (zstd
// would bypass the per-snapshot gzip cache). gzhttp gives "*" no meaning: a
// client asking only that gets identity, which HTTP always allows.
func newGzipWrap() (func(http.HandlerFunc) http.HandlerFunc, error) {
	wrap, err := gzhttp.NewWrapper(gzhttp.CompressionLevel(gzip.BestSpeed), gzhttp.MinSize(0), gzhttp.EnableZstd(false))
	if err != nil {
		return nil, err
	}
	return func(h http.HandlerFunc) http.HandlerFunc {
		gz := wrap(h)
		return func(w http.ResponseWriter, r *http.Request) {
			// gzhttp reads the first Accept-Encoding line only; a list may
			// span several (RFC 9110, section 5.3).
			if v := r.Header.Values("Accept-Encoding"); len(v) > 1 {
				r = r.Clone(r.Context())
				r.Header.Set("Accept-Encoding", strings.Join(v, ", "))
			}
			gz(w, r)
		}
	}, nil
}

// gzipChosen reports whether newGzipWrap's wrapper decided to gzip this response (the
// handler may then write a gzip body it already holds, see serveMetrics).
func gzipChosen(w http.ResponseWriter) bool {
	switch w.(type) {
	case *gzhttp.GzipResponseWriter, gzhttp.GzipResponseWriterWithCloseNotify:
		return true
	}
	return false
}
