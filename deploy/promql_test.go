package deploy

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// promqlKeywords are identifiers that are not metric names when not
// followed by "(" (PromQL keywords are case-insensitive).
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"atan2": true, "inf": true, "nan": true, "by": true, "without": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promqlGrouping are the keywords followed by a list of label names.
var promqlGrouping = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promqlAggregations may be followed by a by/without clause before "(".
var promqlAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
}

// metricNames returns the metric names a PromQL expression (with Grafana
// variables) selects, in order of appearance. It is a tokenizer, not a
// parser: strings, label matchers ({...}), ranges ([...]), variables ($x,
// ${x}), numbers and durations, label lists after by/without/on/ignoring/
// group_left/group_right, keywords and anything followed by "(" (functions,
// aggregations) are skipped; every other identifier is a metric name.
func metricNames(expr string) []string {
	var names []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '{':
			i = skipUntil(expr, i+1, '}')
		case c == '[':
			i = skipUntil(expr, i+1, ']')
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				i = skipUntil(expr, i+1, '}')
			} else {
				for i < len(expr) && isIdentChar(expr[i]) {
					i++
				}
			}
		case isDigit(c) || (c == '.' && i+1 < len(expr) && isDigit(expr[i+1])):
			for i < len(expr) && (isIdentChar(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[k])) {
				k++
			}
			paren := k < len(expr) && expr[k] == '('
			lower := strings.ToLower(word)
			switch {
			case promqlGrouping[lower] && paren:
				j = skipUntil(expr, k+1, ')')
			case promqlAggregations[lower] && grouped(expr[k:]):
			case paren || promqlKeywords[lower]:
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names
}

// grouped tells whether s starts with a by or without clause.
func grouped(s string) bool {
	for _, kw := range []string{"by", "without"} {
		if len(s) > len(kw) && strings.EqualFold(s[:len(kw)], kw) && !isIdentChar(s[len(kw)]) {
			return true
		}
	}
	return false
}

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) int {
	quote := s[i]
	for i++; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quote != '`':
			i++
		case s[i] == quote:
			return i + 1
		}
	}
	return len(s)
}

// skipUntil returns the index after the first closing byte at or after i
// that is not inside a string literal.
func skipUntil(s string, i int, closing byte) int {
	for i < len(s) {
		switch s[i] {
		case closing:
			return i + 1
		case '"', '\'', '`':
			i = skipString(s, i)
		default:
			i++
		}
	}
	return len(s)
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }

// templateQueryExpr returns the PromQL inside a Grafana Prometheus variable
// query: label_values(EXPR, label) -> EXPR, label_values(label) -> "",
// query_result(EXPR) -> EXPR, metrics(regex) -> "", anything else as is.
func templateQueryExpr(q string) string {
	q = strings.TrimSpace(q)
	for _, fn := range []string{"label_values(", "query_result(", "metrics(", "label_names("} {
		if !strings.HasPrefix(q, fn) || !strings.HasSuffix(q, ")") {
			continue
		}
		inner := q[len(fn) : len(q)-1]
		switch fn {
		case "query_result(":
			return inner
		case "label_values(":
			// The label name follows the last comma outside braces/strings.
			last, depth := -1, 0
			for i := 0; i < len(inner); i++ {
				switch inner[i] {
				case '{', '(', '[':
					depth++
				case '}', ')', ']':
					depth--
				case '"', '\'', '`':
					i = skipString(inner, i) - 1
				case ',':
					if depth == 0 {
						last = i
					}
				}
			}
			if last < 0 {
				return ""
			}
			return inner[:last]
		}
		return ""
	}
	return q
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (node) (rate(kata_monitor_scrape_count{node=~"$node"}[$__rate_interval]))`, []string{"kata_monitor_scrape_count"}},
		{`histogram_quantile(0.99, sum by (node, le) (rate(a_bucket{x="}"}[5m])))`, []string{"a_bucket"}},
		{`sum(x) without (instance, job) / on (node) group_left (cri_name) y`, []string{"x", "y"}},
		{`time() - max by (node) (a)`, []string{"a"}},
		{`-sum(rate(b{item="sent_bytes"}[1m])) * 512 + 1e3 + 0x1F`, []string{"b"}},
		{`a and b or c unless d`, []string{"a", "b", "c", "d"}},
		{`a > bool 1 offset 5m`, []string{"a"}},
		{`a AND ON(x) b`, []string{"a", "b"}},
		{`sum without(x) (a) + count by_x`, []string{"a", "count", "by_x"}},
		{`count by (cri_name) (kata_guest_cpu_time{cpu!="total"})`, []string{"kata_guest_cpu_time"}},
		{`foo:rate5m{a='x\'y'}`, []string{"foo:rate5m"}},
		{`sum(a) by (x)`, []string{"a"}},
		{`x + ${var} + $var + $__interval_ms`, []string{"x"}},
		{`# only a comment`, nil},
		{`rate(a[5m:1m] @ 100)`, []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			require.Equal(t, tc.want, metricNames(tc.expr))
		})
	}
}

func TestTemplateQueryExpr(t *testing.T) {
	tests := []struct{ query, want string }{
		{`label_values(kata_monitor_running_shim_count, node)`, `kata_monitor_running_shim_count`},
		{`label_values(m{node=~"$node", x="a,b"}, cri_name)`, `m{node=~"$node", x="a,b"}`},
		{`label_values(node)`, ``},
		{`query_result(sum(x))`, `sum(x)`},
		{`metrics(kata_.*)`, ``},
		{`up`, `up`},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			require.Equal(t, tc.want, templateQueryExpr(tc.query))
		})
	}
}

// FuzzMetricNames checks the tokenizer terminates on any input and only
// returns identifiers that occur in it.
func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{
		`sum by (node) (rate(kata_monitor_scrape_count{node=~"$node"}[$__rate_interval]))`,
		`a{b="}"} + "unterminated`, `${x`, `by (`, `{`, `[`, `'\`, `label_values(a{b=","}, c)`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, n := range metricNames(expr) {
			if n == "" || !strings.Contains(expr, n) || !utf8.ValidString(n) {
				t.Fatalf("bad name %q from %q", n, expr)
			}
		}
		_ = metricNames(templateQueryExpr(expr))
	})
}
