package request

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidSandboxID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0", true}, {"b2", true}, {"pod-1_x.y", true}, {"snowman☃", true},
		{"", false}, {"..", false}, {"a..b", false}, {"a/b", false}, {"a\\b", false},
		{"a\x00", false}, {"a\tb", false}, {"\x7f", false}, {"\xff", false},
		{strings.Repeat("a", 256), true}, {strings.Repeat("a", 257), false},
	}
	for _, tt := range tests {
		t.Run(url.QueryEscape(tt.id), func(t *testing.T) {
			assert.Equal(t, tt.want, ValidSandboxID(tt.id))
		})
	}
}

func TestFamilyPrefixes(t *testing.T) {
	tests := []struct {
		raw  string
		want []string
	}{
		{"", nil},
		{"filter_family=", nil},
		{"filter_family=a", []string{"a"}},
		{"filter_family=a,b", []string{"a", "b"}},
		{"filter_family=+a+,,b+", []string{"a", "b"}},
		{"filter_family=a&filter_family=b", []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			q, err := url.ParseQuery(tt.raw)
			require.NoError(t, err)
			assert.Equal(t, tt.want, FamilyPrefixes(q))
		})
	}
}
