package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/config/layout"
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
//
// With disk, a node directory, it is the node's machine and boot loader
// too: it starts PID 1 on the slot boot.NextBoot picks from the
// directory's loader entries (cairn.slot= on its command line), and again
// each time PID 1 ends with a reboot (exit status 1), in the same cgroup
// and network namespace, the namespace's links reset as a restarted
// machine's are. A poweroff, a shutdown signal sent to it, or a node that
// keeps restarting at once ends it.
func launchContainer(netns, disk, line string) int {
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
	var mu sync.Mutex
	var node *os.Process
	stopping := false
	sig := make(chan os.Signal, 4)
	for s := range shutdown.Signals {
		signal.Notify(sig, s)
	}
	supervise.Go("signal forwarder", func() {
		for s := range sig {
			mu.Lock()
			if shutdown.Signals[s] == shutdown.Poweroff {
				stopping = true
			}
			if node != nil {
				node.Signal(s)
			}
			mu.Unlock()
		}
	})
	quick := 0
	for {
		args := os.Args[1:]
		if disk != "" {
			slot, said, err := boot.NextBoot(disk, filepath.Join(layout.ContainerESP, "loader/entries"))
			if err != nil {
				fmt.Fprintf(os.Stderr, "cairn: init: %s: %v\n", disk, err)
				return 1
			}
			fmt.Fprintf(os.Stdout, "cairn: init: %s\n", said)
			args = []string{"-platform", "container", "-disk", disk, "-netns", netns,
				"-cmdline", strings.TrimSpace(line + " " + layout.SystemParam + "=" + layout.SystemDisk + " " + layout.SlotParam + "=" + slot)}
		}
		cmd := exec.Command("/proc/self/exe", args...)
		cmd.Args[0] = os.Args[0]
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), "container=cairn")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
		mu.Lock()
		if stopping {
			mu.Unlock()
			return 0
		}
		err := cmd.Start()
		if err == nil {
			node = cmd.Process
		}
		mu.Unlock()
		if err != nil {
			fmt.Fprintf(os.Stderr, "cairn: init: starting the container (new namespaces need root): %v\n", err)
			return 1
		}
		started := time.Now()
		cmd.Wait()
		status := supervise.ExitStatus(cmd.ProcessState)
		mu.Lock()
		node = nil
		stop := stopping
		mu.Unlock()
		if disk == "" || status != 1 || stop {
			return status
		}
		if time.Since(started) < quickRestart {
			quick++
		} else {
			quick = 0
		}
		if quick >= maxQuickRestarts {
			fmt.Fprintf(os.Stderr, "cairn: init: the node restarted %d times, each within %s of its start; not starting it again (its console says why)\n", quick, quickRestart)
			return status
		}
		if netns != "" {
			if err := boot.ResetNetwork(netns); err != nil {
				fmt.Fprintf(os.Stderr, "cairn: init: resetting the network for the restart: %v\n", err)
			}
		}
		fmt.Fprintf(os.Stdout, "cairn: init: the node restarts\n")
	}
}

// A node that restarts maxQuickRestarts times in a row, each within
// quickRestart of its start, is not started again: a trusted slot that
// cannot boot would only fail again (a slot on trial falls back at its
// first restart).
const (
	quickRestart     = time.Minute
	maxQuickRestarts = 5
)
