//go:build race

package fast

// The race detector makes the library about fifteen times slower, so the
// test suite (always run with it) compares fewer inputs.
func init() { defaultDiffN = 20_000 }
