package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/qemu"
)

func init() {
	register("run", "boot a build output directory in QEMU (TCG) with the console on this terminal", runCmd)
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func runCmd(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: cairn run [flags] DIR

Boots the kernel, initramfs and cmdline that 'cairn build -o DIR' wrote, under
QEMU's TCG emulator, with the serial console on this terminal. Ctrl-A X quits,
Ctrl-A C switches to QEMU's monitor. The guest is on QEMU's user network: it
gets 10.0.2.15 by DHCP and reaches this machine as 10.0.2.2.

flags:`)
		fs.PrintDefaults()
	}
	boardName := fs.String("board", "", "board to emulate (default: the board in DIR/manifest.json, else qemu-x86_64)")
	seed := fs.String("seed", "", "NoCloud seed to attach: an image (iso9660 or vfat labelled cidata), or a #cloud-config file made into one")
	configURL := fs.String("config", "", "config for the node: a URL the guest can reach (cairn.config=URL), or a local file served to it over HTTP")
	var fwds, appends listFlag
	fs.Var(&fwds, "fwd", "forward a host TCP port to the guest, HOSTPORT:GUESTPORT (repeatable)")
	fs.Var(&appends, "append", "extra kernel command-line argument (repeatable)")
	memory := fs.Int("memory", 0, "guest memory in MiB (default: the board's)")
	smp := fs.Int("smp", 1, "guest CPUs")
	logPath := fs.String("log", "", "also write the console to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	if err := run(fs.Arg(0), *boardName, *seed, *configURL, fwds, appends, *memory, *smp, *logPath); err != nil {
		fmt.Fprintln(os.Stderr, "cairn run:", err)
		return 1
	}
	return 0
}

func run(dir, boardName, seed, configArg string, fwds, appends []string, memory, smp int, logPath string) error {
	art, err := qemu.LoadArtifacts(dir)
	if err != nil {
		return err
	}
	if boardName == "" {
		boardName = manifestBoard(dir)
	}
	b, err := boards.Load(boardName)
	if err != nil {
		return err
	}
	nic := qemu.NIC{}
	for _, f := range fwds {
		fw, err := qemu.ParseForward(f)
		if err != nil {
			return err
		}
		nic.Forwards = append(nic.Forwards, fw)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	cfg := qemu.Config{
		Board:        b,
		Artifacts:    art,
		ExtraCmdline: appends,
		NICs:         []qemu.NIC{nic},
		Memory:       memory,
		SMP:          smp,
		ConsoleLog:   logPath,
		Interactive:  true,
	}
	if seed != "" {
		var cleanup func()
		if cfg.Seed, cleanup, err = seedImage(ctx, seed); err != nil {
			return err
		}
		defer cleanup()
	}
	if configArg != "" {
		url, closeServer, err := configSource(configArg)
		if err != nil {
			return err
		}
		defer closeServer()
		cfg.ExtraCmdline = append(cfg.ExtraCmdline, "cairn.config="+url)
	}
	fmt.Fprintf(os.Stderr, "cairn run: booting %s as %s under TCG; Ctrl-A X quits\n", dir, b.Name)
	m, err := qemu.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer m.Kill()
	return m.Wait(ctx)
}

// manifestBoard reads the board name from DIR/manifest.json, if the builder
// recorded it there, and falls back to the default board.
func manifestBoard(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err == nil {
		var m struct {
			Board json.RawMessage `json:"board"`
		}
		if json.Unmarshal(data, &m) == nil && m.Board != nil {
			var name string
			if json.Unmarshal(m.Board, &name) == nil && name != "" {
				return name
			}
			var obj struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(m.Board, &obj) == nil && obj.Name != "" {
				return obj.Name
			}
		}
	}
	return "qemu-x86_64"
}

// seedImage returns path when it is a seed image, or makes a seed ISO from
// it when it is a #cloud-config file.
func seedImage(ctx context.Context, path string) (string, func(), error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("seed: %w", err)
	}
	if !bytes.HasPrefix(data, []byte("#cloud-config")) {
		return path, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "cairn-run-")
	if err != nil {
		return "", nil, fmt.Errorf("seed: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	iso := filepath.Join(dir, "seed.iso")
	if err := qemu.MakeSeedISO(ctx, iso, qemu.Seed{UserData: data}); err != nil {
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
		return "", nil, fmt.Errorf("-config %s: not a URL and not a readable file: %w", arg, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("-config %s: serve it over HTTP: %w", arg, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read on every request so edits show up on the guest's next retry.
		http.ServeFile(w, r, arg)
	})}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "cairn run: config server:", err)
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	return fmt.Sprintf("http://%s:%d/%s", qemu.HostAddr, port, filepath.Base(arg)), func() { srv.Close() }, nil
}
