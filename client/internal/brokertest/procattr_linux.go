package brokertest

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills the broker if the test binary dies without running
// its cleanups (a timeout, a signal), so no broker outlives its test.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
