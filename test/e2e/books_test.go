package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/fakeshim"
	"github.com/kata-containers/kata-monitor/test/faultproxy"
	"github.com/kata-containers/kata-monitor/test/receiver"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

// storedBooks compares, for tenant, three accounts of what was delivered
// and returns every disagreement (none: the books are exact):
//
//   - sent, kata-monitor's samples_sent_total for the tenant, must equal the
//     samples the receiver acknowledged with 2xx (p.Acked, recorded at the
//     proxy), and no sample may have been acknowledged twice (a receiver
//     stores it once: sent would exceed what is stored);
//   - every acknowledged sample must be stored, with the same value bits;
//   - the receiver must store nothing for the tenant it did not acknowledge
//     but samples of requests it refused (4xx) or whose answer the sender
//     never got (faultproxy's LoseAnswer): Mimir writes the valid samples
//     of a request it answers 400, and a refused part dropped whole may
//     hold some (docs/remote-write.md); those are returned as kept.
//
// What is stored is read through remote read where the harness has it
// (Prometheus, Mimir: receiver.Read), which returns staleness markers, so
// markers are compared too. Elsewhere (Thanos, VictoriaMetrics) it is read
// through Export, whose queries leave markers out: markers are then left
// out of both sides, and Thanos's tenant_id label (added by Receive) is
// removed. A PromQL count alone cannot settle the books: a scrape that
// fails sends one marker per series of its sandbox, counted as sent and
// invisible to a query.
func storedBooks(ctx context.Context, r *receiver.Receiver, p *faultproxy.Proxy, tenant string, sent float64, start time.Time) (problems []string, kept int) {
	acked := p.Acked(tenant)
	if float64(acked.Count) != sent {
		problems = append(problems, fmt.Sprintf("tenant %q: kata-monitor counts %.0f samples sent, the receiver acknowledged %d", tenant, sent, acked.Count))
	}
	if acked.Count != len(acked.Values) {
		problems = append(problems, fmt.Sprintf("tenant %q: %d samples acknowledged, only %d distinct: some were delivered twice", tenant, acked.Count, len(acked.Values)))
	}
	end := time.Now().Add(time.Minute)
	withMarkers := r.Kind.HasRead()
	var got []receiver.Series
	var err error
	if withMarkers {
		got, err = r.ForTenant(tenant).Read(ctx, ".+", start.Add(-time.Minute), end)
	} else {
		got, err = r.ForTenant(tenant).Export(ctx, `{__name__=~".+"}`, start.Add(-time.Minute), end)
	}
	if err != nil {
		return append(problems, fmt.Sprintf("tenant %q: read back: %v", tenant, err)), 0
	}
	stored := map[faultproxy.Sample]uint64{}
	for _, s := range got {
		if r.Kind == receiver.Thanos {
			delete(s.Labels, "tenant_id")
		}
		k := faultproxy.SeriesKey(s.Labels)
		for i, ts := range s.Timestamps {
			stored[faultproxy.Sample{Series: k, Timestamp: ts}] = math.Float64bits(s.Values[i])
		}
	}
	var lost, changed, unacked []string
	for k, v := range acked.Values {
		if !withMarkers && value.IsStaleNaN(math.Float64frombits(v)) {
			continue
		}
		switch sv, ok := stored[k]; {
		case !ok:
			lost = append(lost, fmt.Sprintf("{%s} @%d = %v", k.Series, k.Timestamp, math.Float64frombits(v)))
		case sv != v:
			changed = append(changed, fmt.Sprintf("{%s} @%d: acknowledged %v, stored %v", k.Series, k.Timestamp, math.Float64frombits(v), math.Float64frombits(sv)))
		}
	}
	for k, v := range stored {
		if _, ok := acked.Values[k]; ok {
			continue
		}
		if rv, ok := acked.NotAcked[k]; ok && rv == v {
			kept++
			continue
		}
		unacked = append(unacked, fmt.Sprintf("{%s} @%d = %v", k.Series, k.Timestamp, math.Float64frombits(v)))
	}
	for _, l := range []struct {
		what string
		list []string
	}{{"acknowledged but not stored", lost}, {"stored with another value", changed}, {"stored but never sent or never answered", unacked}} {
		if len(l.list) > 0 {
			slices.Sort(l.list)
			problems = append(problems, fmt.Sprintf("tenant %q: %d samples %s, e.g. %v", tenant, len(l.list), l.what, l.list[:min(4, len(l.list))]))
		}
	}
	return problems, kept
}

// requireStoredAsAcked fails t unless storedBooks finds the books exact,
// and returns how many refused samples the receiver kept.
func requireStoredAsAcked(t *testing.T, r *receiver.Receiver, p *faultproxy.Proxy, tenant string, sent float64, start time.Time) int {
	t.Helper()
	problems, kept := storedBooks(ctxT(t), r, p, tenant, sent, start)
	if len(problems) > 0 {
		t.Fatalf("books of tenant %q:\n%s", tenant, joinLines(problems))
	}
	return kept
}

// markers counts the staleness markers among l's samples.
func markers(l faultproxy.Ledger) int {
	n := 0
	for _, v := range l.Values {
		if value.IsStaleNaN(math.Float64frombits(v)) {
			n++
		}
	}
	return n
}

func joinLines(s []string) string {
	out := ""
	for _, l := range s {
		out += "  " + l + "\n"
	}
	return out
}

// TestBooksCatchAcknowledgedLoss: the books check (storedBooks) finds a
// loss after a 2xx: the proxy answers one request 204 without forwarding
// it, as a receiver that acknowledges and then loses a request would, and
// storedBooks reports exactly that request's samples as acknowledged but
// not stored, and nothing else (the other samples of the run, staleness
// markers included, agree in all three accounts).
func TestBooksCatchAcknowledgedLoss(t *testing.T) {
	t.Parallel()
	prom := startReceiver(t, receiver.Prometheus)
	p, err := faultproxy.New(prom.WriteURL())
	require.NoError(t, err)
	p.RecordAcked("")
	var swallowed atomic.Int64
	p.SetFaults(func(n int64, req *prompb.WriteRequest) faultproxy.Fault {
		if n == 5 {
			swallowed.Store(samplesIn(req))
			return faultproxy.Fault{Status: http.StatusNoContent}
		}
		return faultproxy.Fault{}
	})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	node, err := fakenode.Start(sockets.Dir(t), 2, fakeshim.Options{Exposition: []byte(tenantExposition)})
	require.NoError(t, err)
	t.Cleanup(node.Close)
	start := time.Now()
	cfg := writeConfig(t, "250ms", t.TempDir(), "64MiB", endpoint{name: "prom", url: srv.URL + "/api/v1/write", extra: noMetadata})
	m := startMonitor(t, node, "--config", cfg)
	waitFor(t, 60*time.Second, 250*time.Millisecond, func() (bool, string) {
		return p.Stats().Requests >= 8, fmt.Sprintf("%d requests", p.Stats().Requests)
	})
	a := quiesce(t, m, node, "prom", 60*time.Second)
	require.Positive(t, swallowed.Load())
	problems, _ := storedBooks(ctxT(t), prom, p, "", a.sent, start)
	require.Len(t, problems, 1, "only the swallowed request: %v", problems)
	require.Contains(t, problems[0], fmt.Sprintf("%d samples acknowledged but not stored", swallowed.Load()))
	result(t, "a request of %d samples acknowledged (204) and never stored is reported: %s", swallowed.Load(), problems[0])
}
