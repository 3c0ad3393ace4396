package configs

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/storage/remote/azuread"
	"github.com/prometheus/prometheus/storage/remote/googleiam"
	"github.com/prometheus/sigv4"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// referenceDoc is the operator's configuration reference this test keeps
// true to the code.
const referenceDoc = "../docs/configuration.md"

// configKey is one YAML key of the file format, found by reflection.
type configKey struct {
	path    string // dotted, list items as "[]": remote_write[].queue_config.max_backoff
	typ     string // as the reference writes it
	leaf    bool   // a value, not a section
	def     string // the default rendered as the reference writes it; "" = none
	section bool   // a struct (documenting it is optional)
}

var (
	bytesType       = reflect.TypeFor[config.Bytes]()
	secretType      = reflect.TypeFor[commoncfg.Secret]()
	urlType         = reflect.TypeFor[commoncfg.URL]()
	tlsVersionType  = reflect.TypeFor[commoncfg.TLSVersion]()
	proxyHeaderType = reflect.TypeFor[commoncfg.ProxyHeader]()
	relabelType     = reflect.TypeFor[relabel.Config]()
)

// prometheusSections are library blocks documented by reference to
// Prometheus's configuration page rather than key by key: they are leaves
// here, as relabel rules are.
var prometheusSections = map[reflect.Type]bool{
	reflect.TypeFor[commoncfg.OAuth2]():      true,
	reflect.TypeFor[commoncfg.Headers]():     true,
	reflect.TypeFor[sigv4.SigV4Config]():     true,
	reflect.TypeFor[azuread.AzureADConfig](): true,
	reflect.TypeFor[googleiam.Config]():      true,
}

// typeName is the type column of the reference.
func typeName(t reflect.Type) string {
	switch t {
	case goDurationType, modelDurationType:
		return "duration"
	case bytesType:
		return "size"
	case secretType:
		return "secret"
	case urlType, tlsVersionType:
		return "string"
	case proxyHeaderType:
		return "map of secret lists"
	}
	if prometheusSections[deref(t)] {
		return "Prometheus section"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int64:
		return "int"
	case reflect.Map:
		return "map of " + typeName(t.Elem()) + "s"
	case reflect.Slice:
		if deref(t.Elem()) == relabelType {
			return "list of relabel rules"
		}
		if deref(t.Elem()).Kind() == reflect.Struct {
			return "list of sections"
		}
		return "list of " + typeName(t.Elem()) + "s"
	case reflect.Struct:
		return "section"
	}
	return t.String()
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// renderDefault writes v as the reference's default column does; "" means
// no default (empty string, list or map, or an unset pointer).
func renderDefault(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	switch v.Type() {
	case goDurationType:
		return model.Duration(v.Interface().(time.Duration)).String()
	case modelDurationType:
		return v.Interface().(model.Duration).String()
	case bytesType:
		return v.Interface().(config.Bytes).String()
	case urlType:
		if u := v.Interface().(commoncfg.URL); u.URL != nil {
			return u.String()
		}
		return ""
	case tlsVersionType:
		if v.Uint() == 0 {
			return ""
		}
		s, _ := v.Interface().(commoncfg.TLSVersion).MarshalYAML()
		return fmt.Sprint(s)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return ""
		}
		return renderDefault(v.Elem())
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = renderDefault(v.Index(i))
		}
		return strings.Join(parts, ", ")
	case reflect.Map:
		if v.Len() == 0 {
			return ""
		}
	}
	return fmt.Sprint(v.Interface())
}

// walk records every key under prefix: sections (structs, reached through
// pointers and lists) are recursed into, relabel rules, maps and scalar
// lists are leaves. v holds the defaults (the zero Value when unknown).
func walk(tb testing.TB, t reflect.Type, v reflect.Value, prefix string, out map[string]configKey) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		var fv reflect.Value
		if v.IsValid() {
			fv = v.Field(i)
		}
		ft := f.Type
		if name == "" && strings.Contains(","+opts+",", ",inline,") {
			// An inline struct (prometheus/common's HTTPClientConfig and
			// its ProxyConfig) adds its keys to the enclosing section.
			walk(tb, ft, fv, prefix, out)
			continue
		}
		if name == "" {
			tb.Fatalf("%s%s has no yaml tag", prefix, f.Name) // house rule: every field is tagged
		}
		path := prefix + name
		switch {
		case prometheusSections[deref(ft)]:
			out[path] = configKey{path: path, typ: typeName(ft), leaf: true}
		case deref(ft).Kind() == reflect.Struct && deref(ft) != relabelType && ft != urlType:
			out[path] = configKey{path: path, typ: "section", section: true}
			if fv.IsValid() && fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					fv = reflect.Value{}
				} else {
					fv = fv.Elem()
				}
			}
			walk(tb, deref(ft), fv, path+".", out)
		case ft.Kind() == reflect.Slice && deref(ft.Elem()).Kind() == reflect.Struct && deref(ft.Elem()) != relabelType:
			out[path] = configKey{path: path, typ: typeName(ft), section: true}
			walk(tb, deref(ft.Elem()), itemDefaults(path), path+"[].", out)
		default:
			out[path] = configKey{path: path, typ: typeName(ft), leaf: true, def: renderDefault(fv)}
		}
	}
}

// itemDefaults is what a list item holds after decoding and ApplyDefaults,
// with every optional block present so its own defaults show.
func itemDefaults(path string) reflect.Value {
	if path != "remote_write" {
		return reflect.Value{}
	}
	rw := config.Config{HTTPClientConfig: commoncfg.HTTPClientConfig{
		BasicAuth: &commoncfg.BasicAuth{}, Authorization: &commoncfg.Authorization{},
	}, Tenant: &config.TenantConfig{}}
	rw.ApplyDefaults()
	return reflect.ValueOf(rw)
}

// schemaKeys lists the whole file format with the defaults Load starts from.
func schemaKeys(t *testing.T) map[string]configKey {
	t.Helper()
	def, err := Load(strings.NewReader(""))
	require.NoError(t, err)
	out := map[string]configKey{}
	walk(t, reflect.TypeFor[Config](), reflect.ValueOf(def), "", out)
	return out
}

// docRow is one row of a reference table: | `key` | type | default | meaning |
type docRow struct {
	line                 int
	key, typ, def, means string
}

// rowRE matches a key row; other tables (flags, value types) start
// differently, and a mistyped key still fails as "not documented".
var rowRE = regexp.MustCompile("^\\|\\s*`([a-z][a-z0-9_.\\[\\]]*)`\\s*\\|")

func docRows(t *testing.T) []docRow {
	t.Helper()
	raw, err := os.ReadFile(referenceDoc)
	require.NoError(t, err)
	var rows []docRow
	for i, line := range strings.Split(string(raw), "\n") {
		m := rowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		require.Len(t, cells, 4, "%s:%d: a key row has 4 cells (key, type, default, meaning); no | inside cells", referenceDoc, i+1)
		rows = append(rows, docRow{
			line: i + 1, key: m[1], typ: strings.TrimSpace(cells[1]),
			def: strings.TrimSpace(cells[2]), means: strings.TrimSpace(cells[3]),
		})
	}
	return rows
}

var backticked = regexp.MustCompile("`([^`]*)`")

// TestReferenceDocumentsEveryKey fails for every key of the file format
// missing from docs/configuration.md, every documented key that does not
// exist, and every type or default the reference states wrongly.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	keys := schemaKeys(t)
	rows := docRows(t)
	require.NotEmpty(t, rows)

	documented := map[string]docRow{}
	var problems []string
	for _, r := range rows {
		if prev, dup := documented[r.key]; dup {
			problems = append(problems, fmt.Sprintf("line %d: %s documented twice (also line %d)", r.line, r.key, prev.line))
		}
		documented[r.key] = r
		k, ok := keys[r.key]
		if !ok {
			problems = append(problems, fmt.Sprintf("line %d: %s is documented but is not a key of the file format", r.line, r.key))
			continue
		}
		if r.typ != k.typ {
			problems = append(problems, fmt.Sprintf("line %d: %s: type %q, want %q", r.line, r.key, r.typ, k.typ))
		}
		if r.means == "" {
			problems = append(problems, fmt.Sprintf("line %d: %s: no meaning", r.line, r.key))
		}
		if !k.leaf {
			continue
		}
		// The default column starts with the value in backticks, or has
		// no backticks at all when there is no default value.
		got := ""
		if m := backticked.FindStringSubmatch(r.def); m != nil {
			got = m[1]
			if !strings.HasPrefix(r.def, "`") {
				problems = append(problems, fmt.Sprintf("line %d: %s: the default column must start with the value", r.line, r.key))
			}
		}
		if got != k.def {
			problems = append(problems, fmt.Sprintf("line %d: %s: default %q, the code's is %q", r.line, r.key, got, k.def))
		}
	}
	var paths []string
	for p := range keys {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if k := keys[p]; k.leaf {
			if _, ok := documented[p]; !ok {
				problems = append(problems, fmt.Sprintf("%s (%s) is not documented", p, k.typ))
			}
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s is out of date with the code:\n  %s", referenceDoc, strings.Join(problems, "\n  "))
	}
}

// notConfig marks a ```yaml block of the docs that is some other program's
// file (a receiver's limits, alerting rules, a kustomization): its first
// line is a comment that says so, for the reader as for this test.
const notConfig = "not a kata-monitor config"

// TestDocsExamplesLoad loads every ```yaml block of README.md and docs/*.md
// (the reference included; blocks inside list items too, dedented), so the
// snippets operators copy are valid configs. A block of another program's
// file must say so on its first line (notConfig) and is skipped.
func TestDocsExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../README.md")
	loaded := map[string]int{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, b := range yamlBlocks(string(raw)) {
			first, _, _ := strings.Cut(b.text, "\n")
			if strings.HasPrefix(first, "#") && strings.Contains(first, notConfig) {
				continue
			}
			t.Run(fmt.Sprintf("%s:%d", filepath.Base(f), b.line), func(t *testing.T) {
				_, err := Load(strings.NewReader(b.text))
				require.NoError(t, err, "%s line %d: a kata-monitor config that does not load (or another program's file: say %q on its first line):\n%s", f, b.line, notConfig, b.text)
			})
			loaded[filepath.Base(f)]++
		}
	}
	require.GreaterOrEqual(t, loaded["configuration.md"], 4, "the reference's examples were not found")
}

type yamlBlock struct {
	line int // of the block's first line, 1-based
	text string
}

// yamlBlocks returns the ```yaml blocks of a Markdown text, each dedented by
// its fence's indentation.
func yamlBlocks(md string) []yamlBlock {
	var out []yamlBlock
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimLeft(lines[i], " ") != "```yaml" {
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		var body []string
		j := i + 1
		for ; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
			l := lines[j]
			if len(l) >= indent && strings.TrimSpace(l[:indent]) == "" {
				l = l[indent:]
			}
			body = append(body, l)
		}
		out = append(out, yamlBlock{line: i + 2, text: strings.Join(body, "\n") + "\n"})
		i = j
	}
	return out
}

// TestSchemaWalk keeps the walker honest: it must find known keys with the
// right type and default, so the reference test can fail at all.
func TestSchemaWalk(t *testing.T) {
	keys := schemaKeys(t)
	tests := []struct {
		path, typ, def string
	}{
		{"global.scrape_interval", "duration", "15s"},
		{"global.external_labels", "map of strings", ""},
		{"sandbox_roots", "list of strings", "/run/vc/sbs, /run/kata"},
		{"wal.max_size", "size", "1GiB"},
		{"web.enable_debug", "bool", "true"},
		{"metric_relabel_configs", "list of relabel rules", ""},
		{"remote_write[].queue_config.max_backoff", "duration", "5s"},
		{"remote_write[].queue_config.retry_on_http_429", "bool", "true"},
		{"remote_write[].authorization.type", "string", "Bearer"},
		{"remote_write[].basic_auth.password", "secret", ""},
		{"remote_write[].metadata_config.send_interval", "duration", "1m"},
		// prometheus/common's HTTPClientConfig, inline, and its nested blocks.
		{"remote_write[].follow_redirects", "bool", "false"},
		{"remote_write[].proxy_url", "string", ""},
		{"remote_write[].proxy_from_environment", "bool", "false"},
		{"remote_write[].tls_config.min_version", "string", ""},
		{"remote_write[].bearer_token", "secret", ""},
		{"remote_write[].oauth2", "Prometheus section", ""},
		{"remote_write[].sigv4", "Prometheus section", ""},
		{"remote_write[].azuread", "Prometheus section", ""},
		{"remote_write[].google_iam", "Prometheus section", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			k, ok := keys[tt.path]
			require.True(t, ok, "walker did not find %s", tt.path)
			require.True(t, k.leaf)
			require.Equal(t, tt.typ, k.typ)
			require.Equal(t, tt.def, k.def)
		})
	}
	sections := []string{"global", "remote_write", "remote_write[].queue_config", "remote_write[].tls_config"}
	for _, s := range sections {
		require.True(t, keys[s].section, s)
	}
	for p := range keys {
		// Relabel rules are leaves, documented by reference to Prometheus.
		require.NotContains(t, p, "relabel_configs.")
		require.NotContains(t, p, "relabel_configs[]")
	}
}

// inFlight are docs other work streams write; until they land, a link to
// them is logged rather than failed.
var inFlight = map[string]bool{"docs/faults.md": true, "docs/benchmarks.md": true}

// TestDocsLinks checks every relative link of the operator docs (README.md,
// docs/*.md): the file exists and, for #fragments into Markdown, the
// heading does.
func TestDocsLinks(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../README.md")
	linkRE := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range linkRE.FindAllStringSubmatch(string(raw), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			resolved := f
			if path != "" {
				resolved = filepath.Join(filepath.Dir(f), path)
			}
			rel, _ := filepath.Rel("..", resolved)
			if _, err := os.Stat(resolved); err != nil {
				if inFlight[rel] {
					t.Logf("%s: link to %s, not written yet", f, rel)
					continue
				}
				t.Errorf("%s: broken link %s", f, target)
				continue
			}
			if frag != "" && strings.HasSuffix(resolved, ".md") && !slices.Contains(headingSlugs(t, resolved), frag) {
				t.Errorf("%s: link %s: no heading #%s in %s", f, target, frag, rel)
			}
		}
	}
}

// headingSlugs returns GitHub's anchors of a Markdown file's headings.
func headingSlugs(t *testing.T, path string) []string {
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		h, ok := strings.CutPrefix(line, "#")
		if !ok {
			continue
		}
		h = strings.ToLower(strings.TrimSpace(strings.TrimLeft(h, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}
