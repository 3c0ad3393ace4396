package exposition

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Text exposition format 0.0.4 writing helpers. Names that are not legacy
// Prometheus names are written quoted (the UTF-8 extension of the format), so
// whatever textparse accepted renders into something expfmt parses back.

func isLegacyMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '_' || b == ':' || (i > 0 && b >= '0' && b <= '9')) {
			return false
		}
	}
	return true
}

func isLegacyLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '_' || (i > 0 && b >= '0' && b <= '9')) {
			return false
		}
	}
	return true
}

// appendQuoted appends s in double quotes, escaping backslash, double quote
// and newline: the escaping of label values and quoted names.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	return append(appendEscaped(b, s, true), '"')
}

// appendFamilyName writes a metric name as it appears in HELP and TYPE lines.
func appendFamilyName(b []byte, name string) []byte {
	if isLegacyMetricName(name) {
		return append(b, name...)
	}
	return appendQuoted(b, name)
}

// appendHelp escapes a docstring: backslash and newline only, as the format
// says (a double quote stays as is).
func appendHelp(b []byte, help string) []byte { return appendEscaped(b, help, false) }

// appendEscaped appends s with backslash and newline escaped, and the
// double quote too when quote is set.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendValue writes a sample value the way client_golang does.
func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// isTextFloat reports whether expfmt's text parser accepts s as a float, as
// it requires of "le" and "quantile" label values in histograms and
// summaries.
func isTextFloat(s string) bool {
	if strings.ContainsAny(s, "pP_") {
		return false
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func typeString(t model.MetricType) string {
	switch t {
	case model.MetricTypeCounter:
		return "counter"
	case model.MetricTypeGauge:
		return "gauge"
	case model.MetricTypeHistogram:
		return "histogram"
	case model.MetricTypeSummary:
		return "summary"
	}
	return "untyped"
}

func hasSuffix(name, suffix string) bool {
	return len(name) > len(suffix) && name[len(name)-len(suffix):] == suffix
}

// needsQuotes reports whether the head of a series named name with labels
// ls uses the quoted (UTF-8) syntax for a name.
func needsQuotes(name string, ls labels.Labels) bool {
	if !isLegacyMetricName(name) {
		return true
	}
	quote := false
	ls.Range(func(l labels.Label) {
		if l.Name != model.MetricNameLabel && !isLegacyLabelName(l.Name) {
			quote = true
		}
	})
	return quote
}

// escapedHead renders the head of a series whose names need quotes with
// every name escaped by scheme (model.EscapeName, as client_golang escapes
// for clients that did not ask for UTF-8 names). Allocates: only for such
// series, only for such clients.
func escapedHead(in *Series, scheme model.EscapingScheme) string {
	b := make([]byte, 0, len(in.head)+16)
	b = append(b, escapeMetricName(in.OutName, scheme)...)
	b = append(b, '{')
	var seen []string
	in.quoted.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel || l.Value == "" || Ours(l.Name) {
			return
		}
		name := escapeLabelName(l.Name, scheme)
		// Two names that escape alike, or one that escapes to a label
		// kata-monitor sets, would repeat a label: the line would not
		// parse. The first keeps it.
		if Ours(name) || slices.Contains(seen, name) {
			return
		}
		seen = append(seen, name)
		b = append(b, name...)
		b = append(b, '=')
		b = appendQuoted(b, l.Value)
		b = append(b, ',')
	})
	return string(b)
}

// escapeMetricName escapes a metric name outside the legacy charset with
// scheme and leaves legacy names alone, as model.EscapeMetricFamily does
// (DotsEscaping would otherwise double every underscore).
func escapeMetricName(name string, scheme model.EscapingScheme) string {
	if isLegacyMetricName(name) {
		return name
	}
	return model.EscapeName(name, scheme)
}

// escapeLabelName is escapeMetricName for a label name; a colon, legal in
// metric names only, becomes an underscore.
func escapeLabelName(name string, scheme model.EscapingScheme) string {
	if isLegacyLabelName(name) {
		return name
	}
	e := model.EscapeName(name, scheme)
	if !isLegacyLabelName(e) {
		e = strings.ReplaceAll(e, ":", "_")
	}
	return e
}
