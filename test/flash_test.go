//go:build qemu

package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFlashSDCard writes a built sdcard.img.zst with `cairn flash --yes`
// onto a loop device, as a user writes a card: cairn reports it written
// and verified, the device then holds the raw image byte for byte, and a
// second flash while a file system on it is mounted is refused with
// nothing written.
func TestFlashSDCard(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	dir := image(t, "rpi4", "--format", "sdcard,zst")
	raw := filepath.Join(dir, "sdcard.img")
	st, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	backing := filepath.Join(t.TempDir(), "card")
	if err := os.WriteFile(backing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, st.Size()+64<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", "--partscan", backing).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })

	cmd := exec.Command(cairn(t), "flash", "--yes", raw+".zst", dev)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cairn flash: %v\n%s", err, msg)
	}
	if !regexp.MustCompile(`cairn: flash: \S+ \S+ written to ` + regexp.QuoteMeta(dev) + ` and verified \(\S+ \S+ skipped as holes\)`).Match(msg) {
		t.Errorf("cairn flash said %q; want it written and verified, holes skipped", msg)
	}
	if !sameContents(t, raw, backing, st.Size()) {
		t.Errorf("%s differs from the image it was flashed with", dev)
	}
	t.Logf("cairn flash: %s", bytes.TrimSpace(msg))

	// A file system on the device, mounted (this host may lack vfat
	// and a partition scan of loop devices, so ext4 on the whole card).
	if out, err := exec.Command("mkfs.ext4", "-q", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "ro", dev, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount %s here: %v: %s", dev, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	before := fileSum(t, backing)
	msg, err = exec.Command(cairn(t), "flash", "--yes", raw+".zst", dev).CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "mounted") {
		t.Errorf("cairn flash onto %s mounted on %s: %v, %q; want it refused, naming the mount", dev, mnt, err, msg)
	}
	if after := fileSum(t, backing); after != before {
		t.Errorf("a refused flash changed the device")
	}
	t.Logf("refused: %s", bytes.TrimSpace(msg))
}

// fileSum is a file's sha256.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sameContents compares the first n bytes of two files.
func sameContents(t *testing.T, a, b string, n int64) bool {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < n; off += int64(len(ba)) {
		na, _ := io.ReadFull(fa, ba)
		nb, _ := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
	}
	return true
}
