package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/fakenode"
	"github.com/kata-containers/kata-monitor/test/receiver"
)

// shimFamilyTypes maps each sample name of the shared exposition (renamed as
// pushed) to its family's TYPE.
func shimFamilyTypes(t *testing.T) map[string]string {
	t.Helper()
	raw := shimExposition(t)
	types := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[pushedName(f[2])] = f[3]
		}
	}
	return types
}

func shimExposition(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("../testdata/kata-shim-metrics.prom")
	require.NoError(t, err)
	return raw
}

// pushedName renames the shim's Go client families as kata-monitor does.
func pushedName(n string) string {
	for _, p := range []string{"go_", "process_"} {
		if strings.HasPrefix(n, p) {
			return "kata_shim_" + n
		}
	}
	return n
}

// familyOf strips the suffixes of histogram and summary series.
func familyOf(name string, types map[string]string) string {
	if _, ok := types[name]; ok {
		return name
	}
	for _, s := range []string{"_bucket", "_sum", "_count", "_total"} {
		if b, ok := strings.CutSuffix(name, s); ok {
			if _, ok := types[b]; ok {
				return b
			}
		}
	}
	return name
}

// receiverCounter reads one unlabelled counter from a receiver's /metrics.
func receiverCounter(t *testing.T, r *receiver.Receiver, name string) float64 {
	t.Helper()
	body, err := r.Get(context.Background(), "/metrics")
	require.NoError(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("%s not in %s's /metrics", name, r.Kind)
	return 0
}

// TestRemoteWrite2 (issue 12's acceptance): one kata-monitor, 20 sandboxes,
// three endpoints configured alike for remote write 2.0:
//
//   - Prometheus 3 takes 2.0: every series arrives with its labels and its
//     family's type (stored as __type__ by --enable-feature=type-and-unit-labels,
//     and its own counter of samples written without metadata stays 0),
//     values step by one per round, no fallback;
//   - Debian's Prometheus 2.42 does not read 2.0 (it answers 204 without
//     Written headers): the endpoint falls back to 1.0 and loses nothing;
//   - VictoriaMetrics 1.151 with compression zstd: every series arrives.
func TestRemoteWrite2(t *testing.T) {
	t.Parallel()
	node := startNode(t, 20)
	ctx := ctxT(t)
	prom3, err := receiver.StartArgs(ctx, receiver.Prometheus3, t.TempDir(), nil, "--enable-feature=type-and-unit-labels")
	require.NoError(t, err)
	t.Cleanup(prom3.Stop)
	prom2 := startReceiver(t, receiver.Prometheus)
	vm := startReceiver(t, receiver.VictoriaMetrics151)

	start := time.Now()
	v2 := "    protobuf_message: io.prometheus.write.v2.Request\n"
	cfg := writeConfig(t, "1s", t.TempDir(), "64MiB",
		endpoint{name: "prom3", url: prom3.WriteURL(), extra: v2},
		endpoint{name: "prom2", url: prom2.WriteURL(), extra: v2},
		endpoint{name: "vm", url: vm.WriteURL(), extra: v2 + "    compression: zstd\n"})
	m := startMonitor(t, node, "--config", cfg)

	perSandbox := seriesPerSandbox(t)
	types := shimFamilyTypes(t)
	for _, r := range []*receiver.Receiver{prom3, prom2, vm} {
		t.Run(string(r.Kind), func(t *testing.T) {
			var got []receiver.Series
			waitFor(t, 90*time.Second, time.Second, func() (bool, string) {
				all, err := r.Export(ctx, `{__name__=~"kata_.+",sandbox_id!="",cri_name!=""}`, start, time.Now())
				if err != nil {
					return false, err.Error()
				}
				got = got[:0]
				short := 0
				for _, s := range all {
					got = append(got, s)
					if len(s.Values) < 4 {
						short++
					}
				}
				return len(got) == 20*perSandbox && short == 0, fmt.Sprintf("%d labelled series (want %d), %d with < 4 samples", len(got), 20*perSandbox, short)
			})
			unpushed := m.account(t, "vm").unpushed
			bySandbox := map[string]int{}
			for _, s := range got {
				require.Equal(t, "e2e-node", s.Labels["node"], "external label")
				id := s.Labels["sandbox_id"]
				bySandbox[id]++
				pod := fakenode.PodFor(indexOf(node.IDs(), id))
				require.Equal(t, pod.Name, s.Labels["cri_name"])
				require.Equal(t, pod.Namespace, s.Labels["cri_namespace"])
				require.Equal(t, pod.UID, s.Labels["cri_uid"])
				if r == prom3 {
					name := s.Labels["__name__"]
					want := types[familyOf(name, types)]
					require.NotEmpty(t, want, "series %s: family unknown to the test", name)
					require.Equal(t, want, s.Labels["__type__"], "series %s carries its family's type", name)
				}
				if s.Labels["__name__"] == counterFamily {
					deliveredInOrder(t, s, unpushed)
				}
			}
			require.Len(t, bySandbox, 20)
		})
	}
	require.Zero(t, receiverCounter(t, prom3, "prometheus_api_remote_write_without_metadata_appended_samples_total"),
		"Prometheus 3 got metadata with every sample")
	self := m.ownMetrics(t)
	require.Zero(t, self["kata_monitor_remote_write_samples_dropped_total"])
	require.Zero(t, self[`kata_monitor_remote_write_protocol_fallbacks_total{endpoint="prom3"}`])
	require.Equal(t, 1.0, self[`kata_monitor_remote_write_protocol_fallbacks_total{endpoint="prom2"}`], "Prometheus 2.42 does not read 2.0")
	require.Equal(t, 1.0, self[`kata_monitor_remote_write_protocol_fallbacks_total{endpoint="vm"}`], "VictoriaMetrics does not read 2.0")
	require.Contains(t, m.log.String(), "receiver does not take remote write 2.0")
}
