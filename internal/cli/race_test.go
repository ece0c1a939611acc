//go:build race

package cli

// raceEnabled is true under -race: the tests then build the vigil binary
// with the race detector too, so the processes they run are checked.
const raceEnabled = true
