package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/cairn-os/cairn/init/boot"
	"github.com/cairn-os/cairn/init/shutdown"
	"github.com/cairn-os/cairn/init/supervise"

	"golang.org/x/sys/unix"
)

// launchContainer runs this program again as PID 1 of new PID, mount, UTS,
// IPC and network namespaces (or the network namespace at netns, to join
// a bridge a test prepared), forwards the shutdown signals to it and
// returns its exit status. It is what `init -platform container` does when
// it is not PID 1 already.
func launchContainer(netns string) int {
	flags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP)
	if netns == "" {
		flags |= unix.CLONE_NEWNET
	} else {
		// The child inherits the network namespace of the thread that
		// starts it; this thread stays locked and is never reused.
		runtime.LockOSThread()
		f, err := os.Open(netns)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cairn: init: opening network namespace %s: %v\n", netns, err)
			return 1
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "cairn: init: joining network namespace %s: %v\n", netns, err)
			return 1
		}
	}
	// The node's own cgroup, the root of its cgroup namespace: its kubelet
	// and containers stay apart from the host's and other nodes'.
	cg, err := boot.EnterNodeCgroup(fmt.Sprintf("cairn-node-%d", os.Getpid()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "cairn: init: %v\n", err)
		return 1
	}
	defer func() {
		if err := cg.Remove(); err != nil {
			fmt.Fprintf(os.Stderr, "cairn: init: %v\n", err)
		}
	}()
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "container=cairn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
	sig := make(chan os.Signal, 4)
	for s := range shutdown.Signals {
		signal.Notify(sig, s)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "cairn: init: starting the container (new namespaces need root): %v\n", err)
		return 1
	}
	supervise.Go("signal forwarder", func() {
		for s := range sig {
			cmd.Process.Signal(s)
		}
	})
	cmd.Wait()
	return supervise.ExitStatus(cmd.ProcessState)
}
