package sandboxes

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestAgo(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-5 * time.Second, "just now"},
		{0, "just now"},
		{999 * time.Millisecond, "just now"},
		{time.Second, "1s ago"},
		{59*time.Second + 900*time.Millisecond, "59s ago"},
		{time.Minute, "1m00s ago"},
		{3*time.Minute + 5*time.Second, "3m05s ago"},
		{time.Hour, "1h00m ago"},
		{2*time.Hour + 10*time.Minute + 59*time.Second, "2h10m ago"},
		{24 * time.Hour, "1d00h ago"},
		{3*24*time.Hour + 4*time.Hour + 30*time.Minute, "3d04h ago"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			assert.Equal(t, tt.want, ago(tt.d))
		})
	}
}

func TestShortID(t *testing.T) {
	tests := []struct {
		name, id, want string
	}{
		{"real id", "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0", "0f1e2d3c4b5a…"},
		{"short id unchanged", "b2", "b2"},
		{"exactly twelve", "0123456789ab", "0123456789ab"},
		{"thirteen", "0123456789abc", "0123456789ab…"},
		{"multibyte runes are not split", "ééééééééééééé", "éééééééééééé…"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shortID(tt.id)
			assert.Equal(t, tt.want, got)
			assert.True(t, strings.HasPrefix(tt.id, strings.TrimSuffix(got, "…")))
		})
	}
}

func TestDebugDeadline(t *testing.T) {
	tests := []struct {
		path, seconds string
		want          string
	}{
		{"/debug/pprof/profile", "", "1m0s"},
		{"/debug/pprof/profile", "5", "35s"},
		{"/debug/pprof/profile", "junk", "1m0s"},
		{"/debug/pprof/profile", "999999", "1h0m30s"},
		{"/debug/pprof/trace", "", "31s"},
		{"/debug/pprof/trace", "10", "40s"},
		{"/debug/pprof/heap", "10", "0s"},
		{"/debug/vars", "", "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.path+"?"+tt.seconds, func(t *testing.T) {
			assert.Equal(t, tt.want, debugDeadline(tt.path, tt.seconds).String())
		})
	}
}
