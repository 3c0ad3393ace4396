package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/alecthomas/units"
	"gopkg.in/yaml.v3"
)

// Bytes is a size in bytes. In YAML it is a plain integer (bytes) or a
// number with units as github.com/alecthomas/units's ParseStrictBytes reads
// them: B, KiB/MiB/GiB/TiB (powers of 1024) and kB or KB/MB/GB/TB (powers of
// 1000), case-sensitive, e.g. "512MiB", "1.5GiB", "100MB", "1GiB512MiB".
type Bytes int64

// Unit sizes used by defaults and minimums.
const (
	mib = Bytes(units.MiB)
	gib = Bytes(units.GiB)
)

// maxBytes bounds a size: units parses through float64, exact only up to
// 2^53 bytes (8PiB), far above any disk budget.
const maxBytes = 1 << 53

// ParseBytes parses a size as described on Bytes. Negative sizes and sizes
// above 8PiB are errors; a fraction of a byte is truncated (units does so).
func ParseBytes(s string) (Bytes, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("size %q: must not be negative", s)
	}
	var n int64
	var err error
	if t != "" && strings.Trim(t, "0123456789") == "" {
		if n, err = strconv.ParseInt(t, 10, 64); err != nil {
			return 0, fmt.Errorf("size %q: %w", s, err)
		}
	} else if n, err = units.ParseStrictBytes(t); err != nil {
		return 0, fmt.Errorf("size %q: want a number with a unit such as 512MiB or 100MB (%w)", s, err)
	}
	switch {
	case n < 0:
		return 0, fmt.Errorf("size %q: must not be negative", s)
	case n > maxBytes:
		return 0, fmt.Errorf("size %q: too large (at most 8PiB)", s)
	}
	return Bytes(n), nil
}

// String renders b with binary units ("1GiB", "1GiB512MiB", "1000B"), as
// units.Base2Bytes does; ParseBytes reads it back to the same value.
func (b Bytes) String() string { return units.Base2Bytes(b).String() }

// UnmarshalYAML implements yaml.Unmarshaler for the scalar forms above.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	// Errors carry the line like yaml.v3's own, so a typo is easy to find.
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: size: want a scalar such as 512MiB", n.Line)
	}
	v, err := ParseBytes(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.Marshaler using String.
func (b Bytes) MarshalYAML() (any, error) { return b.String(), nil }
