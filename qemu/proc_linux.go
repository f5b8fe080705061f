package qemu

import "syscall"

// sysProcAttr makes the kernel kill QEMU when the process that started it
// dies, so a crashed test leaves no machine behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
