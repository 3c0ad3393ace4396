// Package faultproxy sits between kata-monitor and a real receiver and
// injects the failures a remote-write path meets in the field: error codes,
// 429 with Retry-After, slow answers, dropped connections. It decodes every
// request it sees so tests can account for each sample exactly.
package faultproxy

import (
	"bytes"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Fault is what to do with one request. The zero value forwards it.
type Fault struct {
	// Status answers with this code instead of forwarding (0 = forward).
	// A 2xx acknowledges a request the receiver never sees: a receiver
	// that loses what it acknowledged, for tests of the tests' checks.
	Status int
	// RetryAfter is sent as the Retry-After header with Status.
	RetryAfter string
	// Delay waits before answering or forwarding (ends early if the client leaves).
	Delay time.Duration
	// Hangup closes the connection without an answer.
	Hangup bool
	// LoseAnswer forwards the request, then closes the connection without
	// the receiver's answer: the receiver may have stored what the sender
	// takes for a failure, and the sender sends it again.
	LoseAnswer bool
}

// Sample names one sample a request carried: its series (SeriesKey) and
// its timestamp (Unix ms).
type Sample struct {
	Series    string
	Timestamp int64
}

// Ledger is what a receiver acknowledged (answered 2xx) for one tenant.
type Ledger struct {
	// Values maps every acknowledged sample to its value's bits
	// (math.Float64bits): a staleness marker is kept as its NaN, which
	// value.IsStaleNaN tells apart from any other value.
	Values map[Sample]uint64
	// Count counts acknowledged samples each time they were acknowledged:
	// above len(Values), some sample was delivered more than once, which
	// a receiver stores once.
	Count int
	// NotAcked holds, as Values does, every sample of every request the
	// receiver answered 4xx or whose answer LoseAnswer kept from the
	// sender: a receiver may have kept such samples (Mimir writes the
	// valid samples of a request it answers 400), so finding one of them
	// stored is no error.
	NotAcked map[Sample]uint64
}

// SeriesKey is a series' identity in a Ledger: its labels sorted by name,
// name="quoted value" joined by commas.
func SeriesKey(labels map[string]string) string {
	s := make([]string, 0, len(labels))
	for k, v := range labels {
		s = append(s, k+"="+strconv.Quote(v))
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func seriesKey(ls []prompb.Label) string {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Name] = l.Value
	}
	return SeriesKey(m)
}

// Stats counts what went through, in samples.
type Stats struct {
	Requests         int64
	ForwardedSamples int64 // forwarded and answered 2xx by the receiver
	// RejectedSamples were answered 400, 409 or 422 (a refusal of the data,
	// by the injection or the receiver): the sender splits such a request.
	RejectedSamples int64
	// RejectedAloneSamples are the part of RejectedSamples whose request
	// held a single series: the sender drops those.
	RejectedAloneSamples int64
	// ReceiverRejectedSamples were forwarded and refused (any 4xx) by the
	// receiver itself, not by an injected fault.
	ReceiverRejectedSamples int64
	FailedSamples           int64 // any other answer, or none: the sender retries or splits (413) them
}

// Proxy is an http.Handler. Concurrency-safe.
type Proxy struct {
	rp *httputil.ReverseProxy

	mu     sync.Mutex
	decide func(n int64, r *http.Request, req *prompb.WriteRequest) Fault
	stats  Stats
	// ledgers, once RecordAcked was called, holds every acknowledged
	// sample per tenant (the value of tenantHeader).
	ledgers      map[string]*Ledger
	tenantHeader string
}

// New proxies to target (the receiver's write URL).
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &Proxy{}
	p.rp = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.Out.URL.Scheme, r.Out.URL.Host, r.Out.URL.Path = u.Scheme, u.Host, u.Path
		r.Out.Host = u.Host
	}}
	return p, nil
}

// SetFaults installs decide, called for the n-th request (from 1) with its
// decoded body. nil forwards everything.
func (p *Proxy) SetFaults(decide func(n int64, req *prompb.WriteRequest) Fault) {
	if decide == nil {
		p.SetHTTPFaults(nil)
		return
	}
	p.SetHTTPFaults(func(n int64, _ *http.Request, req *prompb.WriteRequest) Fault { return decide(n, req) })
}

// SetHTTPFaults is SetFaults for decisions that need the HTTP request too
// (e.g. its Authorization header).
func (p *Proxy) SetHTTPFaults(decide func(n int64, r *http.Request, req *prompb.WriteRequest) Fault) {
	p.mu.Lock()
	p.decide = decide
	p.mu.Unlock()
}

// RecordAcked makes the proxy keep, from now on, every sample of every
// request answered 2xx (by the receiver or by an injected Status), and of
// every request the receiver answered 4xx or whose answer was lost
// (LoseAnswer), per tenant: the value of header in the request ("" without
// it, or when header is ""). Acked returns them. A test compares that with
// what the receiver stored to show that nothing acknowledged was lost.
func (p *Proxy) RecordAcked(header string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tenantHeader = header
	if p.ledgers == nil {
		p.ledgers = map[string]*Ledger{}
	}
}

// Acked returns a copy of tenant's Ledger (empty when nothing was
// acknowledged for it, or RecordAcked was not called).
func (p *Proxy) Acked(tenant string) Ledger {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := Ledger{Values: map[Sample]uint64{}, NotAcked: map[Sample]uint64{}}
	if l := p.ledgers[tenant]; l != nil {
		maps.Copy(out.Values, l.Values)
		maps.Copy(out.NotAcked, l.NotAcked)
		out.Count = l.Count
	}
	return out
}

// record enters the samples of req in its tenant's Ledger: as
// acknowledged (answered 2xx), else as not acknowledged.
func (p *Proxy) record(r *http.Request, req *prompb.WriteRequest, acked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ledgers == nil {
		return
	}
	tenant := ""
	if p.tenantHeader != "" {
		tenant = r.Header.Get(p.tenantHeader)
	}
	l := p.ledgers[tenant]
	if l == nil {
		l = &Ledger{Values: map[Sample]uint64{}, NotAcked: map[Sample]uint64{}}
		p.ledgers[tenant] = l
	}
	into := l.NotAcked
	if acked {
		into = l.Values
	}
	for _, ts := range req.Timeseries {
		k := seriesKey(ts.Labels)
		for _, s := range ts.Samples {
			into[Sample{k, s.Timestamp}] = math.Float64bits(s.Value)
			if acked {
				l.Count++
			}
		}
	}
}

// Stats returns a copy of the counts.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func samples(req *prompb.WriteRequest) int64 {
	var n int64
	for _, ts := range req.Timeseries {
		n += int64(len(ts.Samples))
	}
	return n
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req prompb.WriteRequest
	raw, err := snappy.Decode(nil, body)
	if err == nil {
		err = req.Unmarshal(raw)
	}
	if err != nil {
		http.Error(w, "faultproxy: undecodable body: "+err.Error(), http.StatusBadRequest)
		return
	}
	n := samples(&req)
	p.mu.Lock()
	p.stats.Requests++
	seq := p.stats.Requests
	decide := p.decide
	p.mu.Unlock()
	var f Fault
	if decide != nil {
		f = decide(seq, r, &req)
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			p.count(func(s *Stats) { s.FailedSamples += n })
			return
		case <-t.C:
		}
	}
	switch {
	case f.Hangup, f.LoseAnswer:
		p.count(func(s *Stats) { s.FailedSamples += n })
		if f.LoseAnswer {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			rec := httptest.NewRecorder()
			p.rp.ServeHTTP(rec, r)
			if c := rec.Code; c/100 == 2 || c/100 == 4 {
				p.record(r, &req, false)
			}
		}
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case f.Status != 0:
		p.account(f.Status, n, len(req.Timeseries), false)
		if f.Status/100 == 2 {
			p.record(r, &req, true)
		}
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		http.Error(w, "faultproxy: injected "+http.StatusText(f.Status), f.Status)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	rec := &statusRecorder{ResponseWriter: w}
	p.rp.ServeHTTP(rec, r)
	p.account(rec.status(), n, len(req.Timeseries), true)
	if c := rec.status(); c/100 == 2 || c/100 == 4 {
		p.record(r, &req, c/100 == 2)
	}
}

// account counts one answer: code for n samples in a request of series
// series; forwarded tells the receiver answered, not an injection.
func (p *Proxy) account(code int, n int64, series int, forwarded bool) {
	p.count(func(s *Stats) {
		if forwarded && code/100 == 4 {
			s.ReceiverRejectedSamples += n
		}
		switch code {
		case http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity:
			s.RejectedSamples += n
			if series == 1 {
				s.RejectedAloneSamples += n
			}
			return
		}
		if code/100 == 2 {
			if forwarded {
				s.ForwardedSamples += n
			}
			return
		}
		s.FailedSamples += n
	})
}

func (p *Proxy) count(f func(*Stats)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
