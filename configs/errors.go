package configs

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in a configuration: where it is (the line in the
// file, 0 when the value is a default or the problem is not tied to one key,
// and the key path as the file spells it, e.g.
// remote_write[1].queue_config.max_backoff) and what is wrong with it, in
// the file's own terms (never a Go type name).
type Error struct {
	Line int
	Path string
	Msg  string
}

// Error renders "line 4: remote_write[0].queue_config.max_shard: unknown key".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration, in file order (line,
// then path). Load and Validate return it as their error, so a caller gets
// all of them at once: errors.As(err, &errs).
type Errors []*Error

// Error renders one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As see each problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			// Problems without a line (defaults) go last.
			if es[i].Line == 0 || es[j].Line == 0 {
				return es[j].Line == 0 && es[i].Line != 0
			}
			return es[i].Line < es[j].Line
		}
		return es[i].Path < es[j].Path
	})
}

// orNil returns es as an error, nil when empty (a nil Errors in an error
// interface would not be nil).
func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	es.sort()
	return es
}

// pathPrefix matches a key path at the start of a stage's validation
// message: "queue_config.max_backoff: below min_backoff".
var pathPrefix = regexp.MustCompile(`^[A-Za-z0-9_]+(\[[0-9]+\])?(\.[A-Za-z0-9_]+(\[[0-9]+\])?)*: `)

// stageError turns a stage's Validate error (which names its own field, e.g.
// "max_backoff: below min_backoff") into an Error whose path is prefix
// followed by that field.
func stageError(prefix string, err error) *Error {
	msg := err.Error()
	if m := pathPrefix.FindString(msg); m != "" {
		field := strings.TrimSuffix(m, ": ")
		return &Error{Path: joinPath(prefix, field), Msg: msg[len(m):]}
	}
	return &Error{Path: prefix, Msg: msg}
}

func joinPath(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	}
	return prefix + "." + field
}

// lineOf finds the line of path, or of its nearest ancestor present in the
// file; 0 when none is (the value is a default).
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// yamlLine matches the "line N: " yaml.v3 puts before its messages.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line ([0-9]+): `)

// syntaxErrors turns an error of the YAML parser (not of a key's value) into
// Errors, keeping its line.
func syntaxErrors(err error) Errors {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var lines []string
	if rest, ok := strings.CutPrefix(msg, "unmarshal errors:\n"); ok {
		for _, l := range strings.Split(rest, "\n") {
			lines = append(lines, strings.TrimSpace(l))
		}
	} else {
		lines = []string{msg}
	}
	var out Errors
	for _, l := range lines {
		e := &Error{Msg: l}
		if m := yamlLine.FindStringSubmatch(l); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = l[len(m[0]):]
		}
		if !strings.HasPrefix(e.Msg, "syntax error") {
			e.Msg = "syntax error: " + e.Msg
		}
		out = append(out, e)
	}
	return out
}

// asErrors returns err's Errors, or err as a single Error without position.
func asErrors(err error) Errors {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return Errors{e}
	}
	return Errors{{Msg: err.Error()}}
}
