package remotewrite

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Bytes is a size in bytes. In YAML it is a plain integer (bytes) or a
// number with a unit: B, KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB
// (powers of 1024), case-insensitive, e.g. "512MiB", "1.5GiB", "100MB".
type Bytes int64

// Unit multipliers, largest first so String picks the largest exact one.
const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	tib = 1 << 40
)

func unitMultiplier(u string) (int64, bool) {
	switch strings.ToLower(u) {
	case "", "b":
		return 1, true
	case "kb", "k":
		return 1e3, true
	case "mb", "m":
		return 1e6, true
	case "gb", "g":
		return 1e9, true
	case "tb", "t":
		return 1e12, true
	case "kib", "ki":
		return kib, true
	case "mib", "mi":
		return mib, true
	case "gib", "gi":
		return gib, true
	case "tib", "ti":
		return tib, true
	}
	return 0, false
}

// ParseBytes parses a size as described on Bytes. Negative sizes and values
// that overflow int64 are errors; a fraction is allowed only if the result
// is a whole number of bytes.
func ParseBytes(s string) (Bytes, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, fmt.Errorf("size %q: want a number with an optional unit such as MiB", s)
	}
	mult, ok := unitMultiplier(unit)
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q", s, unit)
	}
	whole, frac, hasFrac := strings.Cut(num, ".")
	if whole == "" || (hasFrac && (frac == "" || strings.Contains(frac, "."))) {
		return 0, fmt.Errorf("size %q: malformed number", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if w > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	total := w * mult
	if hasFrac {
		// Exact decimal fraction: frac/10^len * mult must be a whole number.
		// Keep precision bounded so the arithmetic cannot overflow.
		if len(frac) > 9 {
			return 0, fmt.Errorf("size %q: too many decimals", s)
		}
		f, err := strconv.ParseInt(frac, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("size %q: %w", s, err)
		}
		den := int64(math.Pow10(len(frac)))
		// mult <= 2^40 and f < 10^9: f*mult may overflow, so divide first
		// when it is exact, else multiply with an overflow check.
		var part int64
		switch {
		case mult%den == 0:
			part = f * (mult / den)
		case f > math.MaxInt64/mult:
			return 0, fmt.Errorf("size %q: too large", s)
		default:
			if f*mult%den != 0 {
				return 0, fmt.Errorf("size %q: not a whole number of bytes", s)
			}
			part = f * mult / den
		}
		if total > math.MaxInt64-part {
			return 0, fmt.Errorf("size %q: too large", s)
		}
		total += part
	}
	return Bytes(total), nil
}

// String renders b with the largest binary unit that represents it
// exactly ("1GiB", "512MiB"), else as plain bytes ("1000B"). ParseBytes
// reads it back to the same value.
func (b Bytes) String() string {
	for _, u := range []struct {
		n    int64
		name string
	}{{tib, "TiB"}, {gib, "GiB"}, {mib, "MiB"}, {kib, "KiB"}} {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

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
