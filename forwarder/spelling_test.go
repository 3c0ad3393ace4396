package forwarder

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLabelValueSpelling: pull serves "le" and "quantile" exactly as the
// shim spelled them (upstream passes them through; a Prometheus 2 keys its
// series on them); push sends Prometheus 3's float spelling, the one a
// Prometheus 3 scraping the shim stores. Two spellings of one series are
// one series.
func TestLabelValueSpelling(t *testing.T) {
	tests := []struct {
		name, ct string
		typ      string // histogram or summary
		label    string
		served   string // as the shim spells it
		pushed   string // as push sends it
	}{
		{name: "le integer", typ: "histogram", label: "le", served: "1", pushed: "1.0"},
		{name: "le float", typ: "histogram", label: "le", served: "0.5", pushed: "0.5"},
		{name: "le exponent", typ: "histogram", label: "le", served: "1e3", pushed: "1000.0"},
		{name: "le trailing zeros", typ: "histogram", label: "le", served: "2.50", pushed: "2.5"},
		{name: "le +Inf", typ: "histogram", label: "le", served: "+Inf", pushed: "+Inf"},
		{name: "quantile zero", typ: "summary", label: "quantile", served: "0", pushed: "0.0"},
		{name: "quantile one", typ: "summary", label: "quantile", served: "1", pushed: "1.0"},
		{name: "quantile half", typ: "summary", label: "quantile", served: "0.5", pushed: "0.5"},
		{name: "openmetrics le integer", ct: "application/openmetrics-text; version=1.0.0", typ: "histogram", label: "le", served: "1", pushed: "1.0"},
		{name: "openmetrics quantile zero", ct: "application/openmetrics-text; version=1.0.0", typ: "summary", label: "quantile", served: "0", pushed: "0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sample := "m_bucket"
			if tt.typ == "summary" {
				sample = "m"
			}
			body := fmt.Sprintf("# TYPE m %s\n%s{%s=%q,x=\"y\"} 3\nm_sum 1\nm_count 3\n", tt.typ, sample, tt.label, tt.served)
			if tt.typ == "histogram" && tt.served != "+Inf" {
				body = fmt.Sprintf("# TYPE m %s\n%s{%s=%q,x=\"y\"} 3\nm_bucket{le=\"+Inf\",x=\"y\"} 3\nm_sum 1\nm_count 3\n", tt.typ, sample, tt.label, tt.served)
			}
			if strings.HasPrefix(tt.ct, "application/openmetrics-text") {
				body += "# EOF\n"
			}
			r := newRig(t, withPush)
			r.sbs.set("aaa")
			r.scraper.set("aaa", body)
			r.scraper.types["aaa"] = tt.ct
			r.f.scheduledRound(context.Background())
			out := r.pull(t)
			assert.Contains(t, out, fmt.Sprintf("%s{%s=%q,x=\"y\",sandbox_id=\"aaa\"} 3\n", sample, tt.label, tt.served), "pull as served")
			parseText(t, out)

			var got []string
			for _, ts := range r.appender.round(0) {
				l := labelsOf(ts)
				if l["__name__"] == sample && l["x"] == "y" && l[tt.label] != "+Inf" || tt.served == "+Inf" && l["__name__"] == sample {
					got = append(got, l[tt.label])
				}
			}
			assert.Equal(t, []string{tt.pushed}, got, "push in Prometheus 3's spelling")
		})
	}
}

// TestLabelValueTwoSpellings: le="1" and le="1.0" in one exposition are one
// series: the first is served, the second counted as a duplicate, and push
// sends one sample.
func TestLabelValueTwoSpellings(t *testing.T) {
	r := newRig(t, withPush)
	r.sbs.set("aaa")
	r.scraper.set("aaa", "# TYPE m histogram\nm_bucket{le=\"1\"} 1\nm_bucket{le=\"1.0\"} 2\nm_bucket{le=\"+Inf\"} 2\nm_sum 1\nm_count 2\n")
	r.f.scheduledRound(context.Background())
	assert.Equal(t, 1.0, r.counter(t, "kata_monitor_duplicate_series_total"))
	out := r.pull(t)
	assert.Contains(t, out, "m_bucket{le=\"1\",sandbox_id=\"aaa\"} 1\n")
	assert.NotContains(t, out, "le=\"1.0\"")
	n := 0
	for _, ts := range r.appender.round(0) {
		if l := labelsOf(ts); l["__name__"] == "m_bucket" && l["le"] == "1.0" {
			n++
			require.Equal(t, 1.0, ts.Samples[0].Value)
		}
	}
	assert.Equal(t, 1, n)
}
