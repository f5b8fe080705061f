// Command init is cairn's PID 1. In the initramfs (stage 1) it mounts the
// API file systems, loads the board's kernel modules, mounts the system
// image and switches to it; there (stage 2, the same program) it reads the
// node's config, applies it, brings up the network and the clock, and
// supervises the node's services until a signal or the power button shuts
// the machine down. It never exits and never panics.
//
// Run as PID 1 of a new PID, mount and network namespace on an ordinary
// host (-platform container), it skips the hardware steps and runs the same
// config, network and supervision logic.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/cairn-os/cairn/init/boot"
	"github.com/cairn-os/cairn/init/console"
	"github.com/cairn-os/cairn/init/shutdown"
	"github.com/cairn-os/cairn/init/supervise"

	"golang.org/x/sys/unix"
)

// version is set by the image builder:
// -ldflags "-X main.version=<version>".
var version = "dev"

// stageEnv tells the init started by switch_root that it is stage 2.
const stageEnv = "CAIRN_STAGE"

// Platform is where the init runs.
type Platform string

const (
	// Metal is a real or virtual machine: the init is the kernel's PID 1.
	Metal Platform = "metal"
	// Container is PID 1 of fresh namespaces on an ordinary Linux host.
	Container Platform = "container"
)

// initState is what the boot shares with the shutdown path.
type initState struct {
	platform Platform
	cmdline  Cmdline
	log      *console.Logger
	services *supervise.Supervisor
}

func main() {
	// A panic here is a bug; PID 1 must still not die, or the kernel panics.
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "cairn: init: internal error (panic): %v; idling so the machine stays up\n", r)
			idleForever()
		}
	}()

	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	platformFlag := fs.String("platform", "", "metal or container (default: container when $container is set)")
	cmdlineFlag := fs.String("cmdline", "", "kernel command line to use instead of /proc/cmdline (container platform)")
	// The kernel passes unknown boot words as arguments; ignore what we don't know.
	fs.Parse(os.Args[1:])

	st := &initState{platform: Metal}
	if *platformFlag == string(Container) || (*platformFlag == "" && os.Getenv("container") != "") {
		st.platform = Container
	}
	log := console.New(console.Options{Out: os.Stdout})
	st.log = log
	slog.SetDefault(slog.New(log.Handler()))

	stage2 := os.Getenv(stageEnv) == "2"
	if st.platform == Metal && !stage2 {
		earlyMetal(log)
	}
	if st.platform == Container {
		if err := earlyContainer(); err != nil {
			log.Printf("init: %v", err)
		}
	}
	st.cmdline = readCmdline(*cmdlineFlag)
	log.SetDebug(st.cmdline.Has("cairn.debug"))

	if !stage2 {
		log.Printf("init: starting cairn %s on %s (%s)", version, runtime.GOARCH, st.platform)
	} else {
		slog.Debug("init: stage 2 on the system image")
	}

	ctx := context.Background()
	supervise.Go("reaper", func() { supervise.DefaultReaper().Run(ctx) })
	if st.platform == Metal {
		if err := shutdown.DisableCAD(); err != nil {
			slog.Debug(err.Error())
		}
	}
	requests := shutdown.Watch(ctx, st.platform == Metal)
	st.services = supervise.New(supervise.Options{Log: log.Print, Raw: log.Raw})

	supervise.Go("boot", func() { st.boot(ctx, stage2) })

	for req := range requests {
		st.shutdown(req)
	}
	idleForever()
}

// boot runs stage 1 (when in the initramfs) and stage 2.
func (st *initState) boot(ctx context.Context, stage2 bool) {
	if st.platform == Metal && !stage2 && st.cmdline.Get("cairn.system") != "" {
		if err := stage1(st); err != nil {
			st.log.Printf("init: %v", err)
			st.log.Printf("init: cannot continue the boot; fix the image or the kernel command line and restart the machine")
			return
		}
		// stage1 only returns on error: on success it execs stage 2.
		return
	}
	stage2Boot(ctx, st)
}

// stage1 prepares and switches to the system image.
func stage1(st *initState) error {
	return fmt.Errorf("system image: cairn.system=%s is not supported yet", st.cmdline.Get("cairn.system"))
}

// stage2Boot reads the config, applies it and starts the services.
func stage2Boot(ctx context.Context, st *initState) {
	if err := boot.Run(stage2Mounts(st.platform)); err != nil {
		st.log.Printf("init: %v", err)
	}
	st.startNode()
}

// startNode starts the node's components, if the image has them.
func (st *initState) startNode() {
	if _, err := os.Stat("/usr/bin/cairn-node"); err != nil {
		st.log.Printf("node: nothing to run: this image has no node components")
		return
	}
	st.log.Printf("node: components found, but this init cannot run a role yet")
}

func (st *initState) shutdown(req shutdown.Request) {
	shutdown.Run(req, shutdown.Options{
		Log:       st.log.Print,
		Services:  []shutdown.Stopper{st.services},
		Container: st.platform == Container,
	})
}

// earlyMetal mounts the API file systems and makes sure the console is
// standard input, output and error, then sends the log to /dev/kmsg too.
func earlyMetal(log *console.Logger) {
	if err := boot.Run(boot.APIMounts()); err != nil {
		fmt.Fprintf(os.Stderr, "cairn: init: %v\n", err)
	}
	if _, err := unix.FcntlInt(1, unix.F_GETFD, 0); err != nil {
		if f, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
			for fd := 0; fd <= 2; fd++ {
				unix.Dup3(int(f.Fd()), fd, 0)
			}
			f.Close()
		}
	}
	log.SetOutput(os.Stdout)
	log.SetKmsg("/dev/kmsg")
}

// earlyContainer keeps our mounts out of the host's mount namespace and
// gives the new PID namespace its own /proc.
func earlyContainer() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private (is this a new mount namespace?): %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc for the new PID namespace: %w", err)
	}
	return nil
}

// stage2Mounts are the mounts of the running system beyond the API ones.
func stage2Mounts(p Platform) []boot.Entry {
	steps := []boot.Entry{
		{Step: boot.Mount{Source: "tmp", Target: "/tmp", FSType: "tmpfs", Flags: unix.MS_NODEV | unix.MS_NOSUID, Data: "mode=1777", Mode: 0o1777}, OnError: boot.Continue},
	}
	if p == Metal {
		steps = append(steps, boot.APIMounts()...)
	}
	return steps
}

// idleForever blocks without using the CPU.
func idleForever() {
	for {
		time.Sleep(time.Hour)
	}
}

// Cmdline is the kernel command line, split into words.
type Cmdline []string

func readCmdline(override string) Cmdline {
	if override != "" {
		return Cmdline(strings.Fields(override))
	}
	data, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil
	}
	return Cmdline(strings.Fields(string(data)))
}

// Has reports whether the word key or key=... appears.
func (c Cmdline) Has(key string) bool {
	for _, w := range c {
		if w == key || strings.HasPrefix(w, key+"=") {
			return true
		}
	}
	return false
}

// Get returns the value of the last key=value word, or "".
func (c Cmdline) Get(key string) string {
	v := ""
	for _, w := range c {
		if strings.HasPrefix(w, key+"=") {
			v = w[len(key)+1:]
		}
	}
	return v
}

// String joins the words back.
func (c Cmdline) String() string { return strings.Join(c, " ") }
