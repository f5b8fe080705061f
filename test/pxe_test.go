//go:build qemu

package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/qemu"
)

// TestPXEBootX86_64 netboots pxe/ as a user does with a PXE server: QEMU's
// user network hands out node.ipxe over DHCP and serves it and pxe/ over
// its built-in TFTP, the network card's option ROM (iPXE from Debian's
// ipxe-qemu) runs it under SeaBIOS, node.ipxe sets cairn-config and chains
// pxe/boot.ipxe, which loads the kernel and the live initramfs over TFTP;
// the node reads its config from the URL the script passed as
// cairn.config=URL.
func TestPXEBootX86_64(t *testing.T) {
	board := "qemu-x86_64"
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	dir := image(t, board, "--format", "pxe")

	srv := serveConfig(t)
	srv.set("/pxe/node.yaml", []byte("#cloud-config\nhostname: pxe-node\n"))
	url := srv.url("/pxe/node.yaml")
	tftp := t.TempDir()
	if out, err := exec.Command("cp", "-r", filepath.Join(dir, "pxe"), filepath.Join(tftp, "cairn")).CombinedOutput(); err != nil {
		t.Fatalf("copying pxe/: %v: %s", err, out)
	}
	script := "#!ipxe\nset cairn-config " + url + "\nchain cairn/boot.ipxe\n"
	if err := os.WriteFile(filepath.Join(tftp, "node.ipxe"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}

	b, err := boards.Load(board)
	if err != nil {
		t.Fatal(err)
	}
	m := bootFirmware(t, ctx, b, qemu.Config{
		Firmware: qemu.SeaBIOS,
		FailOn:   qemu.FatalLines,
		NICs:     []qemu.NIC{{TFTP: tftp, BootFile: "node.ipxe"}},
	})
	start := waitFor(t, ctx, m, bootTimeout, reInitStarting)
	waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`cairn: \[\d+\.\d+\] boot: mount the system image /system\.sqfs`))
	loaded := waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if got := reConfigLoaded.FindStringSubmatch(loaded.Text)[1]; !strings.Contains(got, url) {
		t.Errorf("config line %q does not name %s, the URL node.ipxe passed", loaded.Text, url)
	}
	up := waitFor(t, ctx, m, stepTimeout, reNetworkUp)
	if got := reNetworkUp.FindStringSubmatch(up.Text); got[2] != qemu.UserNetAddr {
		t.Errorf("network line %q: want %s", up.Text, qemu.UserNetAddr)
	}
	if n := m.Count(reStateBoot); n != 0 {
		t.Errorf("a network boot mounted STATE %d times; it has none", n)
	}
	powerOff(t, ctx, m)
	t.Logf("figures: %s pxe: init starting %s, config loaded %s after QEMU start", board, secs(start.At), secs(loaded.At))
}
