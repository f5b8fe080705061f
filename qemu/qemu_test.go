package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/boards"
)

func board(t *testing.T, name string) *boards.Board {
	t.Helper()
	b, err := boards.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// flag returns the values following every occurrence of name in args.
func flag(args []string, name string) []string {
	var v []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			v = append(v, args[i+1])
		}
	}
	return v
}

func TestArgs(t *testing.T) {
	x86, arm := board(t, "qemu-x86_64"), board(t, "qemu-arm64")
	art := Artifacts{Kernel: "/o/vmlinuz", Initrd: "/o/initramfs.img", Cmdline: "console=ttyS0 cairn.system=live"}
	ns := &Netns{Name: "cairn-test", Bridge: "br0"}
	tests := []struct {
		name    string
		cfg     Config
		want    map[string][]string // flag -> values, in order
		wantErr string
	}{
		{
			name: "default user network, board machine and memory",
			cfg:  Config{Board: x86, Artifacts: art},
			want: map[string][]string{
				"-accel":   {"tcg"},
				"-machine": {"q35"},
				"-cpu":     {"max"},
				"-m":       {"2048"},
				"-append":  {"console=ttyS0 cairn.system=live tsc=reliable"},
				"-netdev":  {"user,id=net0"},
				"-serial":  {"chardev:con0"},
			},
		},
		{
			name: "forwards, extra cmdline, seed first among drives",
			cfg: Config{Board: arm, Artifacts: art, Memory: 512,
				ExtraCmdline: []string{"cairn.config=http://10.0.2.2:8080/c", "cairn.debug"},
				Seed:         "/t/seed.iso",
				Drives:       []Drive{{Path: "/t/disk.qcow2", Format: "qcow2", Snapshot: true}},
				NICs:         []NIC{{Forwards: []Forward{{HostPort: 6443, GuestPort: 6443}, {HostAddr: "0.0.0.0", HostPort: 2222, GuestPort: 22}}}},
			},
			want: map[string][]string{
				"-machine": {"virt"},
				"-cpu":     {"cortex-a72"},
				"-m":       {"512"},
				"-append":  {"console=ttyS0 cairn.system=live cairn.config=http://10.0.2.2:8080/c cairn.debug"},
				"-netdev":  {"user,id=net0,hostfwd=tcp:127.0.0.1:6443-:6443,hostfwd=tcp:0.0.0.0:2222-:22"},
				"-drive": {
					"file=/t/seed.iso,if=none,format=raw,id=drive0,readonly=on",
					"file=/t/disk.qcow2,if=none,format=qcow2,id=drive1,snapshot=on",
				},
				"-bios": nil,
			},
		},
		{
			name: "disk boot through the board's UEFI firmware, seed beside it",
			cfg:  Config{Board: arm, Seed: "/t/seed.iso", Drives: []Drive{{Path: "/t/disk.img", Snapshot: true}}, NICs: []NIC{}},
			want: map[string][]string{
				"-kernel": nil,
				"-append": nil,
				"-bios":   {"/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"},
				"-device": {"virtio-rng-pci", "virtio-blk-pci,drive=drive0", "virtio-blk-pci,drive=drive1,bootindex=0"},
			},
		},
		{
			name: "disk boot through the board's UEFI firmware",
			cfg:  Config{Board: x86, Drives: []Drive{{Path: "/t/disk.img"}}, NICs: []NIC{}},
			want: map[string][]string{
				"-bios":   {"/usr/share/ovmf/OVMF.fd"},
				"-device": {"virtio-rng-pci", "virtio-blk-pci,drive=drive0,bootindex=0"},
			},
		},
		{
			name:    "extra kernel arguments on a disk boot",
			cfg:     Config{Board: x86, Drives: []Drive{{Path: "/t/disk.img"}}, ExtraCmdline: []string{"cairn.debug"}},
			wantErr: "direct kernel boot",
		},
		{
			name:    "kernel without initramfs",
			cfg:     Config{Board: x86, Artifacts: Artifacts{Kernel: "/o/vmlinuz"}},
			wantErr: "both the kernel and the initramfs",
		},
		{
			name: "TAP in a namespace, fixed MAC",
			cfg:  Config{Board: x86, Artifacts: art, Netns: ns, NICs: []NIC{{TAP: "tap0", MAC: "52:54:00:00:00:01"}}},
			want: map[string][]string{
				"-netdev": {"tap,id=net0,ifname=tap0,script=no,downscript=no"},
				"-kernel": {"/o/vmlinuz"},
				"-initrd": {"/o/initramfs.img"},
				"-device": {"virtio-rng-pci", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01"},
			},
		},
		{
			name: "network boot from QEMU's TFTP through SeaBIOS and the card's iPXE ROM",
			cfg:  Config{Board: x86, Firmware: SeaBIOS, NICs: []NIC{{TFTP: "/t/tftp", BootFile: "node.ipxe", MAC: "52:54:00:00:00:02"}}},
			want: map[string][]string{
				"-bios":   nil,
				"-kernel": nil,
				"-netdev": {"user,id=net0,tftp=/t/tftp,bootfile=node.ipxe"},
				"-device": {"virtio-rng-pci", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:02,bootindex=0"},
			},
		},
		{
			name: "ISO as a CD-ROM on virtio-scsi",
			cfg:  Config{Board: arm, Seed: "/t/seed.iso", Drives: []Drive{{Path: "/t/cairn.iso", Media: MediaCDROM}}, NICs: []NIC{}},
			want: map[string][]string{
				"-bios":   {"/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"},
				"-drive":  {"file=/t/seed.iso,if=none,format=raw,id=drive0,readonly=on", "file=/t/cairn.iso,if=none,format=raw,id=drive1,media=cdrom,readonly=on"},
				"-device": {"virtio-rng-pci", "virtio-blk-pci,drive=drive0", "virtio-scsi-pci,id=scsi0", "scsi-cd,drive=drive1,bus=scsi0.0,bootindex=0"},
			},
		},
		{
			name: "SD card and device tree on a machine without PCI",
			cfg:  Config{Board: arm, Artifacts: art, DTB: "/o/bcm2837-rpi-3-b.dtb", NoRNG: true, Drives: []Drive{{Path: "/t/sdcard.img", Media: MediaSD}}, NICs: []NIC{}},
			want: map[string][]string{
				"-dtb":    {"/o/bcm2837-rpi-3-b.dtb"},
				"-drive":  {"file=/t/sdcard.img,if=sd,format=raw,id=drive0"},
				"-device": nil,
			},
		},
		{
			name:    "TFTP on a TAP device",
			cfg:     Config{Board: x86, Artifacts: art, Netns: ns, NICs: []NIC{{TAP: "tap0", TFTP: "/t"}}},
			wantErr: "need QEMU's user network",
		},
		{
			name: "no network",
			cfg:  Config{Board: x86, Artifacts: art, NICs: []NIC{}},
			want: map[string][]string{"-netdev": nil},
		},
		{
			name: "interactive console multiplexes the monitor",
			cfg:  Config{Board: x86, Artifacts: art, Interactive: true},
			want: map[string][]string{
				"-chardev": {"stdio,id=con0,mux=on,signal=off"},
				"-mon":     {"chardev=con0,mode=readline"},
			},
		},
		{
			name:    "TAP without a namespace",
			cfg:     Config{Board: x86, Artifacts: art, NICs: []NIC{{TAP: "tap0"}}},
			wantErr: "no network namespace",
		},
		{
			name:    "forwards on TAP",
			cfg:     Config{Board: x86, Artifacts: art, Netns: ns, NICs: []NIC{{TAP: "tap0", Forwards: []Forward{{HostPort: 1, GuestPort: 1}}}}},
			wantErr: "user network",
		},
		{
			name:    "no kernel",
			cfg:     Config{Board: x86},
			wantErr: "cairn build",
		},
		{
			name:    "comma in a drive path",
			cfg:     Config{Board: x86, Artifacts: art, Seed: "/t/a,b.iso"},
			wantErr: "comma",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := tt.cfg.args("/run/q/qmp.sock")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for f, want := range tt.want {
				if got := flag(args, f); !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", f, got, want)
				}
			}
			if slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "kvm") }) {
				t.Errorf("args mention kvm, which hangs on these machines: %q", args)
			}
			if !slices.Contains(args, "-no-reboot") {
				t.Errorf("args lack -no-reboot: %q", args)
			}
		})
	}
}

func TestRandomMACsDiffer(t *testing.T) {
	cfg := Config{Board: board(t, "qemu-x86_64"), Artifacts: Artifacts{Kernel: "k", Initrd: "i"}, NICs: []NIC{{}, {}}}
	args, err := cfg.args("q")
	if err != nil {
		t.Fatal(err)
	}
	devs := flag(args, "-device")[1:]
	if len(devs) != 2 || devs[0] == devs[1] {
		t.Fatalf("two NICs got devices %q, want two different MACs", devs)
	}
	if !regexp.MustCompile(`mac=52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$`).MatchString(devs[0]) {
		t.Errorf("device %q: want a MAC in 52:54:00", devs[0])
	}
}

func TestParseForward(t *testing.T) {
	tests := []struct {
		in   string
		want Forward
		ok   bool
	}{
		{"8080:80", Forward{HostPort: 8080, GuestPort: 80}, true},
		{"0.0.0.0:6443:6443", Forward{HostAddr: "0.0.0.0", HostPort: 6443, GuestPort: 6443}, true},
		{"80", Forward{}, false},
		{"a:b", Forward{}, false},
		{"70000:80", Forward{}, false},
		{"1:2:3:4", Forward{}, false},
	}
	for _, tt := range tests {
		got, err := ParseForward(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseForward(%q) = %+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestLoadArtifacts(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadArtifacts(dir); err == nil || !strings.Contains(err.Error(), "cairn build") {
		t.Fatalf("empty dir: err = %v, want one telling to run cairn build", err)
	}
	for f, c := range map[string]string{"vmlinuz": "k", "initramfs.img": "i", "cmdline": "console=ttyS0 panic=-1\n"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, err := LoadArtifacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.Cmdline != "console=ttyS0 panic=-1" || a.Kernel != filepath.Join(dir, "vmlinuz") {
		t.Errorf("got %+v", a)
	}
}

func TestConsoleWaitFor(t *testing.T) {
	c := newConsole(time.Now(), FatalLines)
	go func() {
		fmt.Fprint(c, "[    1.0] Run /init as init process\r\n")
		time.Sleep(10 * time.Millisecond)
		fmt.Fprint(c, "cairn: [00001.100] init: sta")
		time.Sleep(10 * time.Millisecond)
		fmt.Fprint(c, "rting cairn dev on amd64 (metal)\r\ncairn: [00002.000] config: loaded from user-data\n")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, i, err := c.waitFor(ctx, regexp.MustCompile(`init: starting .* on (\S+)`), 0, "m")
	if err != nil {
		t.Fatal(err)
	}
	if l.Text != "cairn: [00001.100] init: starting cairn dev on amd64 (metal)" || i != 1 {
		t.Errorf("got line %d %q", i, l.Text)
	}
	if _, _, err := c.waitFor(ctx, regexp.MustCompile(`config: loaded`), i+1, "m"); err != nil {
		t.Fatal(err)
	}
	// Lines already seen are found again from 0 but not from after them.
	if _, _, err := c.waitFor(ctx, regexp.MustCompile(`Run /init`), 0, "m"); err != nil {
		t.Fatal(err)
	}

	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	_, _, err = c.waitFor(short, regexp.MustCompile(`Run /init`), 1, "node-a")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	for _, want := range []string{"node-a", "/Run /init/", "| cairn: [00002.000] config: loaded from user-data"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("timeout error %q lacks %q", err, want)
		}
	}

	fmt.Fprint(c, "cairn: [00003.000] init: cannot continue the boot; fix the image\n")
	_, _, err = c.waitFor(ctx, regexp.MustCompile(`network: up`), 0, "m")
	if err == nil || !strings.Contains(err.Error(), "cannot continue the boot") {
		t.Fatalf("after a fatal line: err = %v, want it quoted", err)
	}
	if _, _, err := c.waitFor(ctx, regexp.MustCompile(`config: loaded`), 0, "m"); err != nil {
		t.Errorf("a line before the fatal one: %v", err)
	}

	exited := newConsole(time.Now(), nil)
	exited.end(errors.New("exit status 1: qemu-system-x86_64: could not load kernel"))
	_, _, err = exited.waitFor(ctx, regexp.MustCompile(`never`), 0, "m")
	if err == nil || !strings.Contains(err.Error(), "could not load kernel") {
		t.Fatalf("after exit: err = %v, want QEMU's exit reason", err)
	}
}

// TestQMP talks to a real QEMU with no machine at all: it starts in
// milliseconds and answers QMP like any other.
func TestQMP(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatal("qemu-system-x86_64 not installed: run `make deps`")
	}
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-machine", "none", "-nodefaults", "-display", "none",
		"-qmp", "unix:"+sock+",server=on,wait=off")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ret, err := qmpCommand(ctx, sock, "query-status", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ret), `"status"`) {
		t.Errorf("query-status returned %s", ret)
	}
	if _, err := qmpCommand(ctx, sock, "no-such-command", nil); err == nil || !strings.Contains(err.Error(), "CommandNotFound") {
		t.Errorf("unknown command: err = %v, want CommandNotFound", err)
	}
	if _, err := qmpCommand(ctx, sock, "quit", nil); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("QEMU after quit: %v", err)
	}
}

func TestSeeds(t *testing.T) {
	for _, tool := range []string{"cloud-localds", "mkfs.vfat", "mcopy", "blkid"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run `make deps`", tool)
		}
	}
	ctx := context.Background()
	s := Seed{UserData: []byte("#cloud-config\nhostname: a\n"), NetworkConfig: []byte("version: 2\n")}
	for _, tt := range []struct {
		make func(context.Context, string, Seed) error
		fs   string
	}{{MakeSeedISO, "iso9660"}, {MakeSeedVFAT, "vfat"}} {
		path := filepath.Join(t.TempDir(), "seed.img")
		if err := tt.make(ctx, path, s); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("blkid", "-o", "export", path).Output()
		if err != nil {
			t.Fatalf("blkid %s: %v", path, err)
		}
		got := strings.ToLower(string(out))
		if !strings.Contains(got, "label=cidata") || !strings.Contains(got, "type="+tt.fs) {
			t.Errorf("%s seed: blkid says %q, want label cidata and type %s", tt.fs, out, tt.fs)
		}
	}
}
