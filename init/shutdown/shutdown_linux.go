package shutdown

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DisableCAD makes the kernel send SIGINT to PID 1 on Ctrl-Alt-Del instead
// of rebooting at once.
func DisableCAD() error {
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		return fmt.Errorf("handing Ctrl-Alt-Del to the init: %w", err)
	}
	return nil
}

// Grace periods of the final process sweep.
var (
	serviceTimeout = 2 * time.Minute
	sweepGrace     = 5 * time.Second
)

// Run shuts down for req and, on a machine, never returns.
func Run(req Request, o Options) {
	o.logf("shutdown: %s requested by %s", req.Action, req.By)
	ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
	for _, s := range o.Services {
		s.Stop(ctx)
	}
	cancel()
	o.logf("shutdown: all services stopped")
	killAll()
	if !o.Container {
		unmountAll(o)
	}
	unix.Sync()
	switch {
	case req.Action == Reboot && o.RestartArg != "" && !o.Container:
		o.logf("shutdown: rebooting with reboot argument %q", o.RestartArg)
	case req.Action == Reboot:
		o.logf("shutdown: rebooting")
	default:
		o.logf("shutdown: powering off")
	}
	if o.Container {
		if req.Action == Reboot {
			os.Exit(1)
		}
		os.Exit(0)
	}
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if req.Action == Reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	if req.Action == Reboot && o.RestartArg != "" {
		err := restart2(o.RestartArg)
		o.logf("shutdown: the kernel refused reboot argument %q: %v; restarting without it (the boot loader then boots its trusted slot)", o.RestartArg, err)
	}
	for {
		err := unix.Reboot(cmd)
		o.logf("shutdown: the kernel refused to %s: %v; retrying in 10s", req.Action, err)
		time.Sleep(10 * time.Second)
	}
}

// restart2 restarts the machine with arg for the firmware or boot loader
// (reboot(2)'s LINUX_REBOOT_CMD_RESTART2, which golang.org/x/sys/unix's
// Reboot does not take). It returns only on failure.
func restart2(arg string) error {
	p, err := unix.BytePtrFromString(arg)
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2,
		unix.LINUX_REBOOT_CMD_RESTART2, uintptr(unsafe.Pointer(p)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// killAll sends SIGTERM to every other process, waits for them to exit
// (reaping them: nobody else waits any more), then SIGKILLs the rest.
func killAll() {
	if len(userProcesses()) == 0 {
		return
	}
	syscall.Kill(-1, syscall.SIGTERM)
	syscall.Kill(-1, syscall.SIGCONT)
	deadline := time.Now().Add(sweepGrace)
	for time.Now().Before(deadline) {
		reapAll()
		if len(userProcesses()) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(-1, syscall.SIGKILL)
	for i := 0; i < 20 && len(userProcesses()) > 0; i++ {
		reapAll()
		time.Sleep(50 * time.Millisecond)
	}
}

func reapAll() {
	for {
		pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return
		}
	}
}

// userProcesses lists processes other than this one that are not kernel
// threads (kthreadd is PID 2 and the parent of every other kernel thread).
func userProcesses() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 7 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		// Kernel threads: kthreadd (2) and its children; PF_KTHREAD is in flags.
		flags, _ := strconv.ParseUint(f[6], 10, 64)
		if pid == 2 || ppid == 2 || flags&0x00200000 != 0 {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// unmountAll unmounts every file system but the API ones, newest first,
// and remounts the rest read-only.
func unmountAll(o Options) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			points = append(points, f[4])
		}
	}
	slices.Reverse(points)
	keep := func(p string) bool {
		for _, k := range []string{"/proc", "/sys", "/dev", "/run"} {
			if p == k || strings.HasPrefix(p, k+"/") {
				return true
			}
		}
		return p == "/"
	}
	for _, p := range points {
		if keep(p) {
			continue
		}
		if err := unix.Unmount(p, 0); err != nil {
			unix.Mount("", p, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
			unix.Unmount(p, unix.MNT_DETACH)
		}
	}
	unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
}
