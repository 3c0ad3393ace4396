package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/receiver"
)

// fidelityBody is a small exposition with what Prometheus 2 keys series on
// and kata-monitor once re-spelled or hid: le="1", quantile="0", and
// kata_guest_load typed (gauge) or not (untyped, untyped=true).
func fidelityBody(untyped bool, extra string) []byte {
	var b strings.Builder
	if !untyped {
		b.WriteString("# HELP kata_guest_load Guest load.\n# TYPE kata_guest_load gauge\n")
	}
	b.WriteString("kata_guest_load{item=\"load1\"} 0.5\nkata_guest_load{item=\"load5\"} 0.25\n")
	b.WriteString("# HELP kata_test_latency Latency.\n# TYPE kata_test_latency histogram\n" +
		"kata_test_latency_bucket{le=\"1\"} 3\nkata_test_latency_bucket{le=\"10\"} 4\nkata_test_latency_bucket{le=\"+Inf\"} 5\n" +
		"kata_test_latency_sum 12\nkata_test_latency_count 5\n")
	b.WriteString("# HELP kata_test_rpc RPC durations.\n# TYPE kata_test_rpc summary\n" +
		"kata_test_rpc{quantile=\"0\"} 0.1\nkata_test_rpc{quantile=\"1\"} 0.9\nkata_test_rpc_sum 3\nkata_test_rpc_count 7\n")
	b.WriteString(extra)
	return []byte(b.String())
}

// TestFidelityPrometheusScrape has the Debian Prometheus 2.42, and
// Prometheus 3, scrape the daemon while one shim serves kata_guest_load
// untyped (lowest id), one serves UTF-8 names and all serve le="1" and
// quantile="0": the scrape succeeds (up 1) and every series is found with
// the shims' exact label values: as served for Prometheus 2, which keeps
// them; Prometheus 3 normalises le/quantile on scrape and reads UTF-8
// names (issue 11, kinds 1, 2, 3).
func TestFidelityPrometheusScrape(t *testing.T) {
	t.Parallel()
	node := startNode(t, 3)
	ids := append([]string(nil), node.IDs()...)
	// IDs() is sorted: ids[0] is the lowest, served first in the merge.
	node.Shim(ids[0]).SetBody(fidelityBody(true, ""))
	node.Shim(ids[1]).SetBody(fidelityBody(false, ""))
	node.Shim(ids[2]).SetBody(fidelityBody(false,
		"# TYPE \"kata.guest.custom\" gauge\n{\"kata.guest.custom\",\"disk.name\"=\"vda\"} 1\n"))
	// The CRI endpoint in the form without slashes (issue 11, kind 5).
	m := startMonitorEndpoint(t, node, "unix:"+node.CRISocket)

	type query struct {
		query string
		want  int
	}
	tests := []struct {
		kind    receiver.Kind
		queries []query
	}{
		{kind: receiver.Prometheus, queries: []query{
			{`up{job="kata"} == 1`, 1},
			{`kata_test_latency_bucket{le="1",cri_name!=""}`, 3},
			{`kata_test_latency_bucket{le="10"}`, 3},
			{`kata_test_latency_bucket{le="1.0"}`, 0},
			{`kata_test_rpc{quantile="0"}`, 3},
			{`kata_test_rpc{quantile="0.0"}`, 0},
			{`kata_guest_load`, 6},
			{`kata_guest_custom{disk_name="vda",sandbox_id="` + ids[2] + `"}`, 1},
		}},
		{kind: receiver.Prometheus3, queries: []query{
			{`up{job="kata"} == 1`, 1},
			{`kata_test_latency_bucket{le="1.0",cri_name!=""}`, 3},
			{`kata_test_rpc{quantile="0.0"}`, 3},
			{`kata_guest_load`, 6},
			{`{"kata.guest.custom","disk.name"="vda",sandbox_id="` + ids[2] + `"}`, 1},
			{`kata_guest_custom`, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			prom := startScraper(t, tt.kind, m.addr)
			for _, q := range tt.queries {
				var got []map[string]string
				var err error
				waitFor(t, 60*time.Second, 250*time.Millisecond, func() (bool, string) {
					got, err = prom.Instant(ctxT(t), q.query, time.Now())
					return err == nil && len(got) == q.want, fmt.Sprintf("%s: err=%v, %d series, want %d: %v", q.query, err, len(got), q.want, got)
				})
			}
		})
	}
	// The typed family won the merge.
	_, body := m.get("/metrics?filter_family=kata_guest_load", nil)
	require.Contains(t, body, "# TYPE kata_guest_load gauge\n")
	require.Equal(t, 6, strings.Count(body, "\nkata_guest_load{"))
}

// startMonitorEndpoint is startMonitor with --runtime-endpoint given as is.
func startMonitorEndpoint(t *testing.T, node *fakenode.Node, endpoint string, extra ...string) *monitor {
	t.Helper()
	m := startMonitor(t, node, append([]string{"--runtime-endpoint", endpoint}, extra...)...)
	return m
}

// TestFidelityFirstSampleLabelled: the CRI lists a pod before its sandbox
// directory appears; the very first sample of that sandbox, pulled and
// pushed, carries its cri_* labels, under a second after the directory
// appeared (issue 11, kind 5).
// Long because the first sample is checked both pulled and pushed.
func TestFidelityFirstSampleLabelled(t *testing.T) {
	t.Parallel()
	t.Run("pull", func(t *testing.T) {
		node := startNode(t, 2)
		m := startMonitor(t, node, "--config", pullConfig(t, time.Second, 0, ""))
		code, _ := m.get("/metrics", nil) // the daemon has run a round
		require.Equal(t, 200, code)

		k := len(node.IDs())
		id, pod := fakenode.ID(k), fakenode.PodFor(k)
		node.CRI.SetPod(id, pod) // the CRI knows the pod first
		began := time.Now()
		got, err := node.Add()
		require.NoError(t, err)
		require.Equal(t, id, got)
		var first string
		for first == "" {
			require.Less(t, time.Since(began), 30*time.Second, "sandbox never served")
			_, body := m.get("/metrics?filter_family=kata_hypervisor_threads", nil)
			for _, l := range strings.Split(body, "\n") {
				if strings.Contains(l, `sandbox_id="`+id+`"`) {
					first = l
				}
			}
		}
		took := time.Since(began)
		require.Contains(t, first, `cri_name="`+pod.Name+`"`, "the first sample served carries the pod labels")
		require.Contains(t, first, `cri_uid="`+pod.UID+`"`)
		t.Logf("FIDELITY-RESULT: pull: directory to first labelled sample %s", took.Round(time.Millisecond))
		require.Less(t, took, time.Second)
	})
	t.Run("push", func(t *testing.T) {
		node := startNode(t, 2)
		vm := startReceiver(t, receiver.VictoriaMetrics)
		start := time.Now()
		m := startMonitor(t, node, "--config", writeConfig(t, "250ms", t.TempDir(), "64MiB", endpoint{name: "vm", url: vm.WriteURL()}))
		ctx := ctxT(t)
		waitFor(t, 60*time.Second, 250*time.Millisecond, func() (bool, string) {
			all, err := vm.Export(ctx, `kata_hypervisor_threads`, start, time.Now())
			return err == nil && len(all) >= 2, fmt.Sprintf("err=%v series=%d", err, len(all))
		})

		k := len(node.IDs())
		id, pod := fakenode.ID(k), fakenode.PodFor(k)
		node.CRI.SetPod(id, pod)
		began := time.Now()
		_, err := node.Add()
		require.NoError(t, err)
		var series []receiver.Series
		waitFor(t, 60*time.Second, 250*time.Millisecond, func() (bool, string) {
			series, err = vm.Export(ctx, `{sandbox_id="`+id+`"}`, began.Add(-time.Second), time.Now())
			return err == nil && len(series) > 0, fmt.Sprintf("err=%v", err)
		})
		first := int64(1 << 62)
		for _, s := range series {
			require.Equal(t, pod.Name, s.Labels["cri_name"], "every pushed series of the new sandbox is labelled: %v", s.Labels)
			require.Equal(t, pod.UID, s.Labels["cri_uid"])
			first = min(first, s.Timestamps[0])
		}
		took := time.UnixMilli(first).Sub(began)
		t.Logf("FIDELITY-RESULT: push (250ms interval): directory to first labelled sample %s", took.Round(time.Millisecond))
		require.Less(t, took, time.Second)
		require.True(t, m.alive())
	})
}
