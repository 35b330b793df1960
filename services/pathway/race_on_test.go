//go:build race

package pathway_test

// raceEnabled shortens the property test: the race detector makes each
// store write several times slower.
const raceEnabled = true
