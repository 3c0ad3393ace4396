package readme

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCodeMapMatchesTree keeps README's code map true: every directory of
// Go files outside test/ (testdata excluded) has a row, and every package a
// row names exists. test/... is one row.
func TestCodeMapMatchesTree(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(raw), "\n### Code map\n")
	require.True(t, ok, "README has no Code map section")
	if next := strings.Index(section, "\n#"); next >= 0 {
		section = section[:next]
	}
	mapped := map[string]bool{}
	nameRE := regexp.MustCompile("`([^`]+)`")
	for _, l := range strings.Split(section, "\n") {
		if !strings.HasPrefix(l, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(l, "|"), "|")
		for _, m := range nameRE.FindAllStringSubmatch(first, -1) {
			mapped[m[1]] = true
		}
	}
	require.True(t, mapped["test/..."], "the code map has no test/... row")

	var tree []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && rel != "test" && !strings.HasPrefix(rel, "test/") && !slices.Contains(tree, rel) {
			tree = append(tree, rel)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, tree)
	for _, dir := range tree {
		require.True(t, mapped[dir], "package %s has no row in README's code map", dir)
	}
	for name := range mapped {
		if name == "test/..." {
			continue
		}
		require.True(t, slices.Contains(tree, name), "README's code map names %s, which is no package directory", name)
	}
}
