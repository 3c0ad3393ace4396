// Package selfmetrics reads kata-monitor's own kata_monitor_* samples from
// its /metrics endpoint, for the demo, the benchmark and end-to-end tests,
// sums a family's samples in an in-process registry (Sum, MustSum), and
// reads the process's CPU time for benchmarks (CPUTime).
package selfmetrics

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Values maps each sample key (name{labels}) to its value, and each bare
// family name to the sum over its label sets.
type Values map[string]float64

// Fetch GETs url (a kata-monitor /metrics) and parses the kata_monitor_* lines.
func Fetch(url string) (Values, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return Parse(resp.Body)
}

// Parse reads a text exposition and keeps the kata_monitor_* samples.
func Parse(r io.Reader) (Values, error) {
	out := Values{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "kata_monitor_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		key := line[:i]
		out[key] = v
		if j := strings.IndexByte(key, '{'); j >= 0 {
			out[key[:j]] += v
		}
	}
	return out, sc.Err()
}

// Sum adds up the samples (counter, gauge or untyped value, a histogram's
// or summary's count) of family name
// gathered from g whose labels include every kv pair (name, value, name,
// value...), and says how many samples matched: an in-process registry's
// counterpart of Values, for tests that hold the Gatherer. The error is
// Gather's.
func Sum(g prometheus.Gatherer, name string, kv ...string) (sum float64, matched int, err error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m.GetLabel(), kv) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue() +
					float64(m.GetHistogram().GetSampleCount()+m.GetSummary().GetSampleCount())
				matched++
			}
		}
	}
	return sum, matched, nil
}

// hasLabels reports whether ls holds every name, value pair of kv.
func hasLabels(ls []*dto.LabelPair, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range ls {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
