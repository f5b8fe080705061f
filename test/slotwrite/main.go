// Command slotwrite stands in for a node's upgrader where no cluster can
// run: QEMU's raspi3b (1 GiB, no network card) in TestSDCardUpgradeRaspi3b.
// The test appends it and an update bundle (/bundle: update.json and its
// files) to a slot's initramfs and boots that with rdinit=/slotwrite. As
// PID 1 it loads the board's modules as stage 1 does, checks the bundle
// as a node does, writes the disk's other slot with init/boot's WriteSlot
// (the node's own code) and restarts through init/shutdown with the
// argument boot.RestartArg gives, as the init does after an upgrade's
// write. It never exits: on an error it says so and waits.
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/boot"
	"github.com/cairn-os/cairn/init/cmdline"
	"github.com/cairn-os/cairn/init/console"
	"github.com/cairn-os/cairn/init/shutdown"
)

// bundleDir is where the test puts the update bundle in the initramfs.
const bundleDir = "/bundle"

// trialRecord is where the trial record goes: not STATE. With no cluster
// to judge the trial, the new slot's stage 1 then keeps it at its first
// trial boot, as it keeps any slot tryboot.txt names with no upgrade on
// record; the test checks that switch of config.txt.
const trialRecord = "/run/cairn/trial.json"

func main() {
	log := console.New(console.Options{Out: os.Stdout})
	slog.SetDefault(slog.New(log.Handler()))
	if err := run(log); err != nil {
		log.Printf("slotwrite: failed: %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

func run(log *console.Logger) error {
	if err := (boot.Group{Steps: boot.APIMounts()}).Run(); err != nil {
		return err
	}
	consoleFDs()
	board, err := boot.ReadBoard(layout.BoardFile)
	if err != nil {
		return err
	}
	mods := boot.Modules{Dir: boot.ModuleDir("/"), Board: board.Modules, Extra: layout.Stage1Modules, Missing: slog.LevelDebug}
	if err := boot.Run([]boot.Entry{{Step: mods, OnError: boot.Continue}}); err != nil {
		return err
	}
	line, err := cmdline.Read("/proc/cmdline")
	if err != nil {
		return err
	}
	from := line.Get(layout.SlotParam)
	to := boot.OtherSlot(from)
	if _, err := boot.FindPartition(layout.SlotLabel(to), 30*time.Second); err != nil {
		return err
	}
	if why := boot.Upgradable(from); why != "" {
		return fmt.Errorf("this machine cannot be upgraded in place: %s", why)
	}
	b, paths, err := readBundle()
	if err != nil {
		return err
	}
	sysFile, _ := b.File(upgrade.SystemFile)
	log.Printf("slotwrite: cairn %s for board %s from %s; slot %s runs, slot %s is written", b.Version, b.Board, bundleDir, strings.ToUpper(from), strings.ToUpper(to))
	sys := boot.NewSystem{System: paths[upgrade.SystemFile], Kernel: paths[upgrade.KernelFile], Initrd: paths[upgrade.InitrdFile],
		SystemSHA256: sysFile.SHA256, Version: b.Version, Epoch: b.Epoch, Cmdline: b.Cmdline}
	rec := &boot.Trial{Upgrade: "slotwrite", Slot: to, FromSlot: from, Version: b.Version, HealthTimeout: upgrade.DefaultHealthTimeout.String()}
	if err := boot.WriteSlot(to, sys, rec, trialRecord, log.Printf); err != nil {
		return err
	}
	shutdown.Run(shutdown.Request{Action: shutdown.Reboot, By: "slotwrite"}, shutdown.Options{Log: log.Print, RestartArg: boot.RestartArg()})
	return nil
}

// readBundle reads and checks update.json and verifies each of its files,
// as a node does before it writes a slot.
func readBundle() (*upgrade.Bundle, map[string]string, error) {
	data, err := files.Read(filepath.Join(bundleDir, upgrade.BundleFile), upgrade.MaxManifest)
	if err != nil {
		return nil, nil, err
	}
	var b upgrade.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", upgrade.BundleFile, err)
	}
	if err := b.Check(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", upgrade.BundleFile, err)
	}
	paths := map[string]string{}
	for _, f := range b.Files {
		p := filepath.Join(bundleDir, f.Name)
		if err := f.Verify(p); err != nil {
			return nil, nil, err
		}
		paths[f.Name] = p
	}
	return &b, paths, nil
}

// consoleFDs makes /dev/console standard input, output and error when the
// kernel found no console to give PID 1 (none in the initramfs).
func consoleFDs() {
	if _, err := unix.FcntlInt(1, unix.F_GETFD, 0); err == nil {
		return
	}
	f, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	for fd := 0; fd <= 2; fd++ {
		unix.Dup3(int(f.Fd()), fd, 0)
	}
}
