package forwarder

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNameEscaping: a shim serving UTF-8 metric or label names never makes
// the answer unreadable: a client that did not ask for UTF-8 names gets
// them escaped as it asked (underscores by default), one that did gets
// them quoted; every other sandbox's series are in both.
// Long for its table of four escapings, each checked in both phases.
func TestNameEscaping(t *testing.T) {
	const plain = "# TYPE kata_guest_load gauge\nkata_guest_load{item=\"load1\"} 1\n"
	tests := []struct {
		name   string
		utf8   string // the odd shim's exposition
		want   map[model.EscapingScheme][]string
		drops  map[string]int // for the odd sandbox
		series int            // lines of the odd shim
		lost   int            // of which underscores escaping loses
	}{
		{name: "dotted metric and label names",
			utf8: "# TYPE \"kata.guest.custom\" gauge\n{\"kata.guest.custom\",\"disk.name\"=\"vda\"} 1\n",
			want: map[model.EscapingScheme][]string{
				model.NoEscaping:            {`{"kata.guest.custom","disk.name"="vda",sandbox_id="b"} 1`, `# TYPE "kata.guest.custom" gauge`},
				model.UnderscoreEscaping:    {`kata_guest_custom{disk_name="vda",sandbox_id="b"} 1`, `# TYPE kata_guest_custom gauge`},
				model.DotsEscaping:          {`kata_dot_guest_dot_custom{disk_dot_name="vda",sandbox_id="b"} 1`},
				model.ValueEncodingEscaping: {`U__kata_2e_guest_2e_custom{U__disk_2e_name="vda",sandbox_id="b"} 1`},
			}, series: 1},
		{name: "a UTF-8 label name on a legacy metric",
			utf8: "# TYPE kata_guest_io counter\nkata_guest_io{\"dev.name\"=\"vda\",\"µs\"=\"x\"} 7\n",
			want: map[model.EscapingScheme][]string{
				model.NoEscaping:         {`kata_guest_io{"dev.name"="vda","µs"="x",sandbox_id="b"} 7`},
				model.UnderscoreEscaping: {`kata_guest_io{dev_name="vda",_s="x",sandbox_id="b"} 7`},
			}, series: 1},
		{name: "a label escaping to sandbox_id is left out of the line",
			utf8: "# TYPE m gauge\nm{\"sandbox.id\"=\"fake\",x=\"1\"} 7\n",
			want: map[model.EscapingScheme][]string{
				model.NoEscaping:         {`m{"sandbox.id"="fake",x="1",sandbox_id="b"} 7`},
				model.UnderscoreEscaping: {`m{x="1",sandbox_id="b"} 7`},
			}, series: 1},
		{name: "two families escaping alike: the first keeps the name",
			utf8: "# TYPE \"kata.guest.x\" gauge\n{\"kata.guest.x\"} 1\n# TYPE kata_guest_x gauge\nkata_guest_x 2\n",
			want: map[model.EscapingScheme][]string{
				model.NoEscaping:         {`{"kata.guest.x",sandbox_id="b"} 1`, `kata_guest_x{sandbox_id="b"} 2`},
				model.UnderscoreEscaping: {`kata_guest_x{sandbox_id="b"} 1`},
			}, drops: map[string]int{"escape_clash": 1}, series: 2, lost: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.sbs.set("a", "b")
			r.scraper.set("a", plain)
			r.scraper.set("b", tt.utf8)
			for _, scheme := range []model.EscapingScheme{model.NoEscaping, model.UnderscoreEscaping, model.DotsEscaping, model.ValueEncodingEscaping} {
				var buf bytes.Buffer
				require.NoError(t, r.f.View(context.Background(), scheme, func(_ uint64, write func(io.Writer, []string) error) error {
					return write(&buf, nil)
				}))
				out := buf.String()
				validation := model.LegacyValidation
				if scheme == model.NoEscaping {
					validation = model.UTF8Validation
				}
				parser := expfmt.NewTextParser(validation)
				mfs, err := parser.TextToMetricFamilies(strings.NewReader(out))
				require.NoError(t, err, "scheme %s:\n%s", scheme, out)
				assert.Len(t, mfs["kata_guest_load"].GetMetric(), 1, "the other sandbox's series, scheme %s", scheme)
				for _, l := range tt.want[scheme] {
					assert.Contains(t, out, l+"\n", "scheme %s", scheme)
				}
				want := 1 + tt.series
				if scheme == model.UnderscoreEscaping {
					want -= tt.lost
				}
				assert.Equal(t, want, seriesCount(mfs), "scheme %s:\n%s", scheme, out)
			}
			st, _ := r.f.Status("b")
			assert.Equal(t, tt.drops, st.Dropped)
		})
	}
}

// TestPushKeepsUTF8Names: push sends names as the shim served them (remote
// write carries any UTF-8 name; a Prometheus 3 scraping the shim stores
// the same); a receiver that refuses them answers 4xx and remote write
// drops only those series, counted.
func TestPushKeepsUTF8Names(t *testing.T) {
	r := newRig(t, withPush)
	r.sbs.set("b")
	r.scraper.set("b", "# TYPE \"kata.guest.custom\" gauge\n{\"kata.guest.custom\",\"disk.name\"=\"vda\"} 1\n")
	r.f.scheduledRound(context.Background())
	var got []map[string]string
	for _, ts := range r.appender.round(0) {
		if l := labelsOf(ts); l["sandbox_id"] == "b" {
			got = append(got, l)
		}
	}
	require.Len(t, got, 1)
	assert.Equal(t, map[string]string{"__name__": "kata.guest.custom", "disk.name": "vda", "sandbox_id": "b"}, got[0])
}
