// Package configtest runs the table of a stage Config's Validate cases, the
// same loop for every stage (sources/*, forwarder, httpapi): each case
// changes the defaults and names the error it expects.
package configtest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Case is one Validate case: Mod changes the default config; WantErr is a
// part of the error Validate must return (the key path, usually), "" when
// the config must be valid.
type Case[C any] struct {
	Name    string
	Mod     func(*C)
	WantErr string
}

// Validate runs every case as a subtest on a fresh def() changed by its
// Mod. Each func of also (a constructor taking the config, say) must give
// the same verdict as Validate: no error, or one containing WantErr.
func Validate[C interface{ Validate() error }](t *testing.T, def func() C, cases []Case[C], also ...func(C) error) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			cfg := def()
			tc.Mod(&cfg)
			for _, check := range append([]func(C) error{C.Validate}, also...) {
				err := check(cfg)
				if tc.WantErr == "" {
					require.NoError(t, err)
				} else {
					require.ErrorContains(t, err, tc.WantErr)
				}
			}
		})
	}
}
