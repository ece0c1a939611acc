//go:build unix

package cli

import "syscall"

// fdLimit returns the soft limit on open files. (The Go runtime raises it
// to the hard limit at start.)
func fdLimit() (uint64, bool) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, false
	}
	return uint64(l.Cur), true
}
