package tenant

import (
	"strings"

	"github.com/kata-containers/kata-monitor/remotewrite/config"
)

// escapeDigits are the hex digits of dirOf's %xx escapes.
const escapeDigits = "0123456789abcdef"

// dirOf is the directory name of a valid tenant's queue: letters,
// digits, '-' and '_' as they are, every other byte as %xx (lower-case
// hex), so a name is never "." or "..", never holds a '/', and decodes back
// unambiguously ('%' is not a tenant character).
func dirOf(tenant string) string {
	var b strings.Builder
	for i := 0; i < len(tenant); i++ {
		c := tenant[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(escapeDigits[c>>4])
		b.WriteByte(escapeDigits[c&15])
	}
	return b.String()
}

// tenantOf reverses dirOf; ok is false for a name dirOf
// cannot have produced (then the directory is not a tenant's queue).
func tenantOf(name string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(name) {
			return "", false
		}
		hi, lo := strings.IndexByte(escapeDigits, name[i+1]), strings.IndexByte(escapeDigits, name[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	t := b.String()
	if config.ValidTenant(t) != nil || dirOf(t) != name {
		return "", false
	}
	return t, true
}
