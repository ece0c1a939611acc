//go:build !race

package cli

// raceEnabled is true under -race (see race_test.go).
const raceEnabled = false
