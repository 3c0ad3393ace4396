// Package faultproxy sits between kata-monitor and a real receiver and
// injects the failures a remote-write path meets in the field: error codes,
// 429 with Retry-After, slow answers, dropped connections. It decodes every
// request it sees so tests can account for each sample exactly.
package faultproxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Fault is what to do with one request. The zero value forwards it.
type Fault struct {
	// Status answers with this code instead of forwarding (0 = forward).
	Status int
	// RetryAfter is sent as the Retry-After header with Status.
	RetryAfter string
	// Delay waits before answering or forwarding (ends early if the client leaves).
	Delay time.Duration
	// Hangup closes the connection without an answer.
	Hangup bool
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
	case f.Hangup:
		p.count(func(s *Stats) { s.FailedSamples += n })
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case f.Status != 0:
		p.account(f.Status, n, len(req.Timeseries), false)
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
			s.ForwardedSamples += n
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
