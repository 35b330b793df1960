// Package layout holds the tests of the repository's layout rules: which
// packages may import which (docs/architecture.md, "Dependencies between
// services"). It has no code of its own.
package layout
