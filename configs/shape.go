package configs

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"gopkg.in/yaml.v3"
)

// shapeChecker walks the YAML node tree beside the Go type it will be decoded
// into and reports every key the type does not have and every value its
// field cannot hold, with the key path and line, all at once. yaml.v3 alone
// stops at the first value a custom unmarshaler refuses, reports Go type
// names (`cannot unmarshal !!str into time.Duration`, `field x not found in
// type configs.Config`) and no key path. The real decode runs after this
// check passes, so the two never disagree on what is accepted: each value is
// decoded here by yaml.v3 itself, into a fresh value of its field's type.
type shapeChecker struct {
	errs Errors
	// lines maps every key path present in the file to its line, so the
	// errors of Validate (which knows paths, not lines) can carry one.
	lines map[string]int
	depth int // of the current check call
	// bad holds every value node its own type refused. Load blanks them
	// (null: the field keeps its default) before the real decode, because
	// a refusing unmarshaler (a relabel regex, an action) stops yaml.v3's
	// decode half-way and would hide every other problem of the file.
	bad []*yaml.Node
	// contained marks errors whose blanked value cannot be echoed by
	// Validate elsewhere in its section (a relabel regex: the default
	// regex is valid for every action), so the section's other problems
	// are still reported.
	contained map[*Error]bool
}

var (
	goDurationType    = reflect.TypeFor[time.Duration]()
	modelDurationType = reflect.TypeFor[model.Duration]()
	relabelRegexType  = reflect.TypeFor[relabel.Regexp]()
	nodeUnmarshaler   = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshaler   = reflect.TypeFor[encoding.TextUnmarshaler]()
	funcUnmarshaler   = reflect.TypeFor[interface {
		UnmarshalYAML(func(any) error) error
	}]()
)

func (c *shapeChecker) add(n *yaml.Node, path, format string, args ...any) {
	c.errs = append(c.errs, &Error{Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// maxDepth bounds the walk: the config is a few levels deep, and aliases
// could otherwise lead it round in circles.
const maxDepth = 32

// check walks node n (to be decoded into a value of type t at path).
func (c *shapeChecker) check(n *yaml.Node, t reflect.Type, path string) {
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > maxDepth {
		c.add(n, path, "nested too deeply (an alias that refers to itself?)")
		return
	}
	if n = valueNode(n); n == nil {
		return // yaml.v3 leaves the default (or nil) in place
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if customUnmarshal(t) {
		c.checkCustom(n, t, path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.add(n, path, "want a section of key: value lines, got %s", describe(n))
			return
		}
		c.checkStruct(n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.add(n, path, "want a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.lines[p] = item.Line
			c.check(item, t.Elem(), p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.add(n, path, "want a section of name: value lines, got %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			c.lines[p] = k.Line
			c.check(v, t.Elem(), p)
		}
	case reflect.Interface:
		// Anything goes.
	default:
		c.decodeValue(n, t, path)
	}
}

// valueNode follows aliases and a document to the node holding the value:
// nil for an empty document or a null.
func valueNode(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind == 0 || isNull(n) {
		return nil
	}
	return n
}

// checkCustom checks a value of a type with its own unmarshaller: the keys
// of a struct first, then a trial decode when they were right.
func (c *shapeChecker) checkCustom(n *yaml.Node, t reflect.Type, path string) {
	before := len(c.errs)
	if t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode {
		c.checkStruct(n, t, path)
	}
	if len(c.errs) == before {
		c.decodeValue(n, t, path)
	}
}

func (c *shapeChecker) checkStruct(n *yaml.Node, t reflect.Type, path string) {
	fields := yamlFields(t)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" { // <<: *anchor merges a mapping (or a list of them)
			c.check(v, t, path)
			continue
		}
		p := joinPath(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			c.add(k, p, "key repeated (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		ft, ok := fields[k.Value]
		if !ok {
			c.add(k, p, "unknown key%s", suggest(k.Value, fields))
			continue
		}
		c.lines[p] = k.Line
		c.check(v, ft, p)
	}
}

// decodeValue decodes n into a fresh value of type t with yaml.v3 and turns
// a failure into the file's terms.
func (c *shapeChecker) decodeValue(n *yaml.Node, t reflect.Type, path string) {
	v := reflect.New(t)
	err := n.Decode(v.Interface())
	if err == nil {
		return
	}
	c.bad = append(c.bad, n)
	if t == relabelRegexType && n.Kind == yaml.ScalarNode {
		c.add(n, path, "%s", regexMessage(n.Value, err))
		if c.contained == nil {
			c.contained = map[*Error]bool{}
		}
		c.contained[c.errs[len(c.errs)-1]] = true
		return
	}
	if n.Kind != yaml.ScalarNode && !customUnmarshal(t) {
		c.add(n, path, "want %s, got %s", kindName(t), describe(n))
		return
	}
	switch {
	case t == goDurationType:
		c.add(n, path, "%q is not a duration (a number and a unit: 500ms, 15s, 1m30s, 2h)", n.Value)
	case t == modelDurationType:
		c.add(n, path, "%q is not a duration (a number and a unit: 500ms, 15s, 1m30s, 2h, 1d, 1w)", n.Value)
	case customUnmarshal(t):
		c.add(n, path, "%s", customMessage(err))
	default:
		c.add(n, path, "%q is not %s", n.Value, kindName(t))
	}
}

// regexMessage names a relabel regex that does not compile. relabel
// anchors every regex as ^(?s:REGEX)$ (prometheus/model/relabel NewRegexp),
// so validity is that of the anchored form; the message quotes the regex
// as written and gives RE2's reason without the anchored expression.
func regexMessage(re string, err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("%q is not a valid regular expression (RE2 syntax): %s", re, se.Code)
	}
	return fmt.Sprintf("%q is not a valid regular expression (RE2 syntax): %s", re, customMessage(err))
}

// customMessage strips what yaml.v3 and our unmarshalers put around a
// custom unmarshaler's reason (the line, which Error prints once).
func customMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	msg = strings.TrimSpace(msg)
	if m := yamlLine.FindString(msg); m != "" {
		msg = msg[len(m):]
	}
	return msg
}

func customUnmarshal(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return pt.Implements(nodeUnmarshaler) || pt.Implements(funcUnmarshaler) || pt.Implements(textUnmarshaler)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what the file has at n.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// kindName names what a value of type t must be.
func kindName(t reflect.Type) string {
	if t == goDurationType || t == modelDurationType {
		return "a duration such as 15s"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a section"
	}
	return "a value"
}

// yamlFields maps each YAML key of struct t (inline fields flattened, as
// yaml.v3 does) to its type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// suggest proposes the known key closest to an unknown one.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 1<<30
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if d := distance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" || bestD > max(2, len(key)/4) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// distance is the Levenshtein edit distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
