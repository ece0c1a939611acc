//go:build !unix

package cli

func fdLimit() (uint64, bool) { return 0, false }
