// Package memory holds the in-process memory harness of kata-monitor: a
// remote-write Sink (a real remotewrite.Queue, its WAL in a temp dir,
// sending to an httptest receiver that counts what it gets and answers 204,
// or 503 while Down is set) and LiveHeap, the heap in use after a full
// collection. The memory tests in this folder drive a forwarder into it;
// the forwarder's BenchmarkPushRound200 uses the Sink too, so it does not
// import the forwarder.
package memory

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/test/background"
)

// Sink is a running remote-write queue and the receiver behind it.
type Sink struct {
	Queue *remotewrite.Queue
	// Down makes the receiver answer 503.
	Down atomic.Bool
	// Requests counts the requests received; Body their body bytes (the
	// wire, without HTTP headers).
	Requests, Body atomic.Int64
}

// NewSink starts a queue (endpoint "mem", backoff 5-20 ms, fsync per
// segment) sending to its own receiver, or to url when url is not empty;
// opts adjust the endpoint's config. The queue runs until the end of t.
func NewSink(t testing.TB, url string, opts ...func(*config.Config)) *Sink {
	t.Helper()
	s := &Sink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		s.Body.Add(n)
		s.Requests.Add(1)
		// A 2.0 receiver says what it wrote (the sender checks it).
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", "0")
		if s.Down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	cfg := config.DefaultConfig()
	cfg.URL, cfg.Name = srv.URL+"/api/v1/write", "mem"
	if url != "" {
		cfg.URL = url
	}
	cfg.QueueConfig.MinBackoff, cfg.QueueConfig.MaxBackoff = model.Duration(5*time.Millisecond), model.Duration(20*time.Millisecond)
	for _, o := range opts {
		o(&cfg)
	}
	wcfg := config.DefaultWALConfig()
	wcfg.Dir, wcfg.Fsync = t.TempDir(), "segment"
	q, err := remotewrite.New(cfg, wcfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	s.Queue = q
	background.Run(t, q.Run)
	return s
}

// LiveHeap is the heap in use (bytes) after a full collection.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// EnvInt is the positive integer in the environment variable name, else
// def.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
