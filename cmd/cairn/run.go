package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/image"
	"github.com/cairn-os/cairn/qemu"
)

func init() { register(newRunCmd) }

// runFlags are the settings of one cairn run.
type runFlags struct {
	board, seed, config, log string
	fwds, appends            []string
	memory, smp              int
}

func newRunCmd() *cobra.Command {
	var rf runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] DIR",
		Short: "boot a build output directory in QEMU (TCG) with the console on this terminal",
		Long: `Boots the kernel, initramfs and cmdline that 'cairn build --output DIR' wrote,
under QEMU's TCG emulator, with the serial console on this terminal. Ctrl-A X
quits, Ctrl-A C switches to QEMU's monitor. The guest is on QEMU's user
network: it gets 10.0.2.15 by DHCP and reaches this machine as 10.0.2.2.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd.Context(), cmd.ErrOrStderr(), args[0], rf)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&rf.board, "board", "b", "", "board to emulate (default: the board in DIR/manifest.json, else qemu-x86_64)")
	f.StringVarP(&rf.seed, "seed", "s", "", "NoCloud seed to attach: an image (iso9660 or vfat labelled cidata), or a #cloud-config file made into one")
	f.StringVarP(&rf.config, "config", "c", "", "config for the node: a URL the guest can reach (cairn.config=URL), or a local file served to it over HTTP")
	f.StringArrayVar(&rf.fwds, "fwd", nil, "forward a host TCP port to the guest, HOSTPORT:GUESTPORT (repeatable)")
	f.StringArrayVar(&rf.appends, "append", nil, "extra kernel command-line argument (repeatable)")
	f.IntVarP(&rf.memory, "memory", "m", 0, "guest memory in MiB (default: the board's)")
	f.IntVar(&rf.smp, "smp", defaultSMP(), "guest CPUs (two when this machine has two or more: TCG runs each on a host thread of its own)")
	f.StringVar(&rf.log, "log", "", "also write the console to this file")
	cmd.RegisterFlagCompletionFunc("board", completeBoards)
	cmd.MarkFlagFilename("seed")
	cmd.MarkFlagFilename("log")
	return cmd
}

func run(ctx context.Context, stderr io.Writer, dir string, rf runFlags) error {
	art, err := qemu.LoadArtifacts(dir)
	if err != nil {
		return err
	}
	boardName := rf.board
	if boardName == "" {
		boardName = manifestBoard(dir)
	}
	b, err := boards.Load(boardName)
	if err != nil {
		return err
	}
	nic := qemu.NIC{}
	for _, f := range rf.fwds {
		fw, err := qemu.ParseForward(f)
		if err != nil {
			return err
		}
		nic.Forwards = append(nic.Forwards, fw)
	}
	if !slices.ContainsFunc(nic.Forwards, func(f qemu.Forward) bool { return f.GuestPort == 6443 }) {
		nic.Forwards = append(nic.Forwards, apiForward(stderr))
	}
	apiPort := nic.Forwards[slices.IndexFunc(nic.Forwards, func(f qemu.Forward) bool { return f.GuestPort == 6443 })].HostPort
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	cfg := qemu.Config{
		Board:        b,
		Artifacts:    art,
		ExtraCmdline: rf.appends,
		NICs:         []qemu.NIC{nic},
		Memory:       rf.memory,
		SMP:          rf.smp,
		ConsoleLog:   rf.log,
		Interactive:  true,
	}
	if rf.seed != "" {
		var cleanup func()
		if cfg.Seed, cleanup, err = seedImage(ctx, rf.seed); err != nil {
			return err
		}
		defer cleanup()
	} else if rf.config == "" {
		// No config of the user's: the node is a single server, and its
		// token comes from beside the image, so the user can reach it.
		path, token, err := ensureToken(dir)
		if err != nil {
			return err
		}
		var cleanup func()
		if cfg.Seed, cleanup, err = tokenSeed(ctx, token); err != nil {
			return err
		}
		defer cleanup()
		fmt.Fprintf(stderr, "cairn run: the cluster token is in %s; once the console says the server is ready:\n"+
			"  cairn kubeconfig --server https://127.0.0.1:%d --token-file %s -o kubeconfig\n", path, apiPort, path)
	}
	if rf.config != "" {
		url, closeServer, err := configSource(rf.config)
		if err != nil {
			return err
		}
		defer closeServer()
		cfg.ExtraCmdline = append(cfg.ExtraCmdline, "cairn.config="+url)
	}
	fmt.Fprintf(stderr, "cairn run: booting %s as %s under TCG; Ctrl-A X quits\n", dir, b.Name)
	m, err := qemu.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer m.Kill()
	return m.Wait(ctx)
}

// manifestBoard is the board the build in dir was for, as its manifest
// says, else the default board.
func manifestBoard(dir string) string {
	if m, err := image.ReadManifest(dir); err == nil && m.Board != "" {
		return m.Board
	}
	return "qemu-x86_64"
}

// seedImage returns path when it is a seed image, or makes a seed ISO from
// it when it is a #cloud-config file.
func seedImage(ctx context.Context, path string) (string, func(), error) {
	data, err := config.ReadFile(path)
	switch {
	case errors.Is(err, config.ErrTooLarge):
		return path, func() {}, nil // larger than any cloud-config: an image
	case err != nil:
		return "", nil, fmt.Errorf("seed: %w", err)
	case !bytes.HasPrefix(data, []byte("#cloud-config")):
		return path, func() {}, nil
	}
	return seedISO(ctx, data)
}

// seedISO makes a NoCloud seed ISO holding userData in a new temporary
// directory, which cleanup removes.
func seedISO(ctx context.Context, userData []byte) (iso string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "cairn-run-")
	if err != nil {
		return "", nil, fmt.Errorf("seed: %w", err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	iso = filepath.Join(dir, "seed.iso")
	if err := qemu.MakeSeedISO(ctx, iso, qemu.Seed{UserData: userData}); err != nil {
		cleanup()
		return "", nil, err
	}
	return iso, cleanup, nil
}

// configSource returns the URL to hand the guest: arg itself when it is a
// URL, or the address of a local HTTP server serving the file arg.
func configSource(arg string) (url string, closeFn func(), err error) {
	if strings.Contains(arg, "://") {
		return arg, func() {}, nil
	}
	if _, err := os.Stat(arg); err != nil {
		return "", nil, fmt.Errorf("--config %s: not a URL and not a readable file: %w", arg, err)
	}
	url, closeFn, err = qemu.ServeFile(arg)
	if err != nil {
		return "", nil, fmt.Errorf("--config %s: %w", arg, err)
	}
	return url, closeFn, nil
}

// defaultSMP is the guest's CPUs when --smp is not given: two when this
// machine has two or more, since QEMU's TCG runs each guest CPU on its
// own host thread and one CPU leaves the control plane's start waiting
// on everything else the node does at boot.
func defaultSMP() int {
	return min(2, runtime.NumCPU())
}
