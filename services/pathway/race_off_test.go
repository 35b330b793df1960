//go:build !race

package pathway_test

const raceEnabled = false
