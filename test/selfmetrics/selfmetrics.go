// Package selfmetrics reads kata-monitor's own kata_monitor_* samples from
// its /metrics endpoint, for the demo, the benchmark and end-to-end tests.
package selfmetrics

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
