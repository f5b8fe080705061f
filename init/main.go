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
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/init/boot"
	"github.com/cairn-os/cairn/init/cmdline"
	"github.com/cairn-os/cairn/init/console"
	"github.com/cairn-os/cairn/init/network"
	"github.com/cairn-os/cairn/init/node/upgrader"
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
	cmdline  cmdline.Line
	log      *console.Logger
	services *supervise.Supervisor
	net      *network.State
	netCfg   *config.Network // what net came up with
	// disk is the container platform's -disk: a node directory stands in
	// for a disk, its slots the node's.
	disk bool
	// requests are shutdowns the init asks of itself (an upgrade's
	// restart).
	requests chan shutdown.Request
}

func main() {
	// A panic here is a bug; PID 1 must still not die, or the kernel panics.
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "cairn: init: internal error (panic): %v; idling so the machine stays up\n", r)
			idleForever()
		}
	}()

	if filepath.Base(os.Args[0]) == "modprobe" {
		os.Exit(modprobeMain(os.Args[1:]))
	}

	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	platformFlag := fs.String("platform", "", "metal or container (default: container when $container is set)")
	cmdlineFlag := fs.String("cmdline", "", "kernel command line to use instead of /proc/cmdline (the container platform has none)")
	rootFlag := fs.String("root", "", "container platform: the system image (squashfs file or directory) to run on")
	netnsFlag := fs.String("netns", "", "container platform: join this network namespace instead of a new one")
	diskFlag := fs.String("disk", "", "container platform: a node directory standing in for a disk (slot files, loader entries, STATE); booted from the slot its loader entries name, again at each reboot")
	// The kernel passes unknown boot words as arguments; ignore what we don't know.
	fs.Parse(os.Args[1:])

	st := &initState{platform: Metal, disk: *diskFlag != "", requests: make(chan shutdown.Request, 1)}
	if *platformFlag == string(Container) || (*platformFlag == "" && os.Getenv("container") != "") {
		st.platform = Container
	}
	log := console.New(console.Options{Out: os.Stdout})
	st.log = log
	slog.SetDefault(slog.New(log.Handler()))

	if st.platform == Container {
		if (*rootFlag == "") == (*diskFlag == "") {
			log.Printf("init: the container platform needs -root, the system image to run on, or -disk, a node directory (the host's files are never written)")
			os.Exit(2)
		}
		if *cmdlineFlag == "" {
			// Not the host's /proc/cmdline: it is not this node's.
			*cmdlineFlag = "cairn.platform=container"
		}
		if os.Getpid() != 1 {
			os.Exit(launchContainer(*netnsFlag, *diskFlag, *cmdlineFlag))
		}
		if os.Getenv(stageEnv) != "2" {
			root := boot.ContainerRoot{Image: *rootFlag, Disk: *diskFlag, Slot: cmdline.Parse(*cmdlineFlag).Get(layout.SlotParam)}
			if err := root.Run(); err != nil {
				log.Printf("init: %v", err)
				os.Exit(1) // a reboot: a slot on trial gives way to the other one
			}
			if *diskFlag != "" {
				// As on a disk, stage 2 is the slot's own init.
				err := syscall.Exec("/sbin/init", os.Args, append(os.Environ(), stageEnv+"=2"))
				log.Printf("init: starting slot %s's /sbin/init: %v", strings.ToUpper(root.Slot), err)
				os.Exit(1)
			}
		} else if *diskFlag != "" {
			boot.UseContainerDisk()
		}
	}

	if st.platform == Metal && os.Getpid() != 1 {
		// Mounting, taking Ctrl-Alt-Del and powering off belong to the
		// machine's own init; never do them to a host by accident.
		log.Printf("init: not PID 1; this program is a machine's init (or run it with -platform container -root IMAGE)")
		os.Exit(2)
	}
	stage2 := os.Getenv(stageEnv) == "2"
	os.Unsetenv(stageEnv) // not for anything this init starts
	if st.platform == Metal {
		if !stage2 {
			earlyMetal(log)
		}
		log.SetKmsg("/dev/kmsg")
	}
	if *cmdlineFlag != "" {
		st.cmdline = cmdline.Parse(*cmdlineFlag)
	} else {
		st.cmdline, _ = cmdline.Read("/proc/cmdline")
	}
	log.SetDebug(st.cmdline.Has("cairn.debug"))
	if st.platform == Metal && !stage2 {
		quietKernel(st.cmdline, "/proc/sys/kernel/printk")
	}

	if !stage2 || st.platform == Container {
		log.Printf("init: starting cairn %s on %s (%s)", version, runtime.GOARCH, st.platform)
	} else {
		slog.Debug("init: stage 2 on the system image")
	}

	ctx := context.Background()
	// The boot ends when a shutdown begins: no config retries, no DHCP,
	// nothing new started while services stop.
	bootCtx, endBoot := context.WithCancel(ctx)
	supervise.Go("reaper", func() { supervise.DefaultReaper().Run(ctx) })
	if st.platform == Metal {
		if err := shutdown.DisableCAD(); err != nil {
			slog.Debug(err.Error())
		}
	}
	requests := shutdown.Watch(ctx, st.platform == Metal)
	st.services = supervise.New(supervise.Options{Log: log.Print, Raw: log.Raw})

	supervise.Go("boot", func() { st.boot(bootCtx, stage2) })

	for {
		var req shutdown.Request
		select {
		case req = <-requests:
		case req = <-st.requests:
		}
		endBoot()
		st.shutdown(req)
		break
	}
	idleForever()
}

// boot runs stage 1 (when in the initramfs) and stage 2.
func (st *initState) boot(ctx context.Context, stage2 bool) {
	if st.platform == Metal && !stage2 && boot.InInitramfs() && st.cmdline.Get(layout.SystemParam) != "" {
		err := stage1(st)
		// stage1 returns only on error: on success it executes stage 2.
		st.log.Printf("init: %v", err)
		if st.cmdline.Get(layout.SystemParam) == layout.SystemDisk {
			// A slot on trial gives way to the other one; a trusted
			// slot would only fail again.
			boot.FallBack(st.cmdline.Get(layout.SlotParam), fallBackDelay)
		}
		st.log.Printf("init: cannot continue the boot; fix the image or the kernel command line and restart the machine")
		return
	}
	stage2Boot(ctx, st)
}

// stage1 loads the modules needed to find the system image, mounts it and
// switches to it. It returns only on failure.
func stage1(st *initState) error {
	steps := []boot.Entry{
		{Step: boot.Modules{Dir: boot.ModuleDir("/"), Board: boardModules(), Extra: layout.Stage1Modules, Missing: slog.LevelDebug}, OnError: boot.Continue},
	}
	switch sys := st.cmdline.Get(layout.SystemParam); sys {
	case layout.SystemLive:
		steps = append(steps, boot.Entry{Step: boot.SystemImage{
			Image: layout.SystemImage, Lower: "/run/cairn/system", RW: "/run/cairn/rw", NewRoot: newRoot,
		}, OnError: boot.Stop})
	case layout.SystemDisk:
		disk, err := boot.DiskSystem(st.cmdline.Get(layout.SlotParam), "/run/cairn/system", "/run/cairn/rw", newRoot)
		if err != nil {
			return err
		}
		steps = append(steps, disk...)
	default:
		return fmt.Errorf("%s=%s: this init boots %s=%s (the system image inside the initramfs) or %s (a disk's slot)", layout.SystemParam, sys, layout.SystemParam, layout.SystemLive, layout.SystemDisk)
	}
	if err := boot.Run(steps); err != nil {
		return err
	}
	slog.Info("boot: switch to the system image")
	env := append(os.Environ(), stageEnv+"=2")
	err := boot.SwitchRoot(newRoot, []string{"/dev", "/proc", "/sys", "/run"}, "/sbin/init", os.Args, env)
	return fmt.Errorf("switching to the system image: %w", err)
}

// boardModules lists the modules the board file names, for stage 1 and
// stage 2 alike.
func boardModules() []string {
	b, err := boot.ReadBoard(layout.BoardFile)
	if err != nil {
		slog.Warn(fmt.Sprintf("init: %v; loading only what devices ask for", err))
		return nil
	}
	return b.Modules
}

// fallBackDelay is how long a failed stage 1 on a slot on trial shows its
// error on the console before it restarts the machine.
const fallBackDelay = 10 * time.Second

// newRoot is where stage 1 assembles the root file system of stage 2.
const newRoot = "/sysroot"

// stage2Boot prepares the running system, reads the config, applies it and
// starts the services.
func stage2Boot(ctx context.Context, st *initState) {
	if err := boot.Run(st.stage2Steps()); err != nil {
		st.log.Printf("init: %v", err)
	}
	if boot.Persistent("/var/log") {
		st.services.SetLogDir("/var/log/cairn")
	}
	upgrader.WatchTrial(st.slot(), st.log.Printf, st.reboot)
	cfg := st.loadConfig(ctx)
	loaded := time.Now()
	if ctx.Err() != nil {
		return
	}
	st.applyConfig(cfg)
	if st.net == nil {
		st.startNetwork(ctx, cfg.Network, cfg.Hostname)
	} else if !reflect.DeepEqual(st.netCfg, cfg.Network) {
		st.log.Printf("network: the config's network section differs from the one the network came up with to read the config; it applies at the next boot")
	}
	// The name is the config's, else one made from the MAC address: decided
	// now, so the line names the machine as the cluster will.
	var byLink map[string][]netip.Prefix
	if st.net != nil {
		byLink = st.net.Addresses()
	}
	st.log.Printf("%s", identityLine(st.nodeHostname(), byLink))
	if ctx.Err() != nil {
		return
	}
	st.startClock(ctx, cfg)
	st.startNode(ctx, cfg, loaded)
}

// stage2Steps prepare the system image's root for the node.
func (st *initState) stage2Steps() []boot.Entry {
	tmp := boot.Mount{Source: "tmp", Target: "/tmp", FSType: "tmpfs", Flags: unix.MS_NODEV | unix.MS_NOSUID, Data: "mode=1777", Mode: 0o1777}
	if st.platform == Container {
		return nil // ContainerRoot made the mounts; there is no hardware
	}
	return []boot.Entry{
		{Step: boot.Group{Name: "mount the API file systems", Steps: boot.APIMounts()}, OnError: boot.Continue},
		{Step: tmp, OnError: boot.Continue},
		{Step: boot.Cgroup2{Path: "/sys/fs/cgroup"}, OnError: boot.Continue},
		{Step: boot.Modules{Dir: boot.ModuleDir("/"), Board: boardModules(), Missing: slog.LevelWarn}, OnError: boot.Continue},
	}
}

// shutdown stops everything and powers off or reboots. Should the orderly
// path fail with a panic, the machine still goes down, synced.
func (st *initState) shutdown(req shutdown.Request) {
	defer func() {
		if r := recover(); r != nil {
			st.log.Printf("shutdown: internal error (panic): %v; going down at once", r)
			unix.Sync()
			if st.platform == Container {
				os.Exit(1)
			}
			if req.Action == shutdown.Reboot {
				unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
			}
			unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		}
	}()
	shutdown.Run(req, shutdown.Options{
		Log:        st.log.Print,
		Services:   []shutdown.Stopper{st.services},
		Container:  st.platform == Container,
		RestartArg: boot.RestartArg(),
	})
}

// earlyMetal mounts the API file systems and makes sure the console is
// standard input, output and error.
func earlyMetal(log *console.Logger) {
	// Quietly: the first line on the console is "init: starting".
	if err := (boot.Group{Steps: boot.APIMounts()}).Run(); err != nil {
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
}

// idleForever blocks without using the CPU.
func idleForever() {
	for {
		time.Sleep(time.Hour)
	}
}
