package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// loopDevice attaches a new file of size bytes, filled with 0xAA, to a
// loop device, detached when the test ends. It needs root and losetup.
func loopDevice(t *testing.T, size int) (dev, backing string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup is not installed")
	}
	backing = filepath.Join(t.TempDir(), "device")
	must(t, os.WriteFile(backing, bytes.Repeat([]byte{0xAA}, size), 0o644))
	out, err := exec.Command("losetup", "--find", "--show", backing).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev, backing
}

// TestFlash writes a zstd image with its bmap to a loop device: the mapped
// blocks hold the image, the holes keep what the device held, and a
// second write of a raw image without a bmap writes every byte.
func TestFlash(t *testing.T) {
	dev, backing := loopDevice(t, 4<<20)
	img := make([]byte, 3<<20)
	for i := 0; i < 64<<10; i++ {
		img[i] = byte(i)
		img[2<<20+i] = byte(i * 7)
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.img")
	must(t, os.WriteFile(raw, img, 0o644))
	bm, err := makeBmap(bytes.NewReader(img), int64(len(img)))
	must(t, err)
	must(t, os.WriteFile(raw+".bmap", bm, 0o644))
	zst := raw + ".zst"
	f, err := os.Create(zst)
	must(t, err)
	zw, err := zstd.NewWriter(f)
	must(t, err)
	zw.Write(img)
	must(t, zw.Close())
	must(t, f.Close())

	res, err := Flash(context.Background(), FlashOptions{Image: zst, Device: dev})
	must(t, err)
	if res.Bmap != raw+".bmap" || res.Written != 128<<10 || res.Skipped != int64(len(img))-128<<10 {
		t.Errorf("flash with the bmap: %+v, want disk.img.bmap used, 128 KiB written, the rest skipped", res)
	}
	got, err := os.ReadFile(backing)
	must(t, err)
	if !bytes.Equal(got[:64<<10], img[:64<<10]) || !bytes.Equal(got[2<<20:2<<20+64<<10], img[2<<20:2<<20+64<<10]) {
		t.Error("the mapped blocks on the device differ from the image")
	}
	if got[1<<20] != 0xAA {
		t.Error("a hole the bmap leaves out was written")
	}

	must(t, os.Remove(raw+".bmap"))
	res, err = Flash(context.Background(), FlashOptions{Image: raw, Device: dev})
	must(t, err)
	got, err = os.ReadFile(backing)
	must(t, err)
	if res.Bmap != "" || res.Written != int64(len(img)) || !bytes.Equal(got[:len(img)], img) {
		t.Errorf("flash without a bmap: %+v; want every byte written", res)
	}
}

// TestFlashRefuses: not a block device, a device too small, and a mounted
// one are refused before anything is written.
func TestFlashRefuses(t *testing.T) {
	dev, _ := loopDevice(t, 8<<20)
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.img")
	must(t, os.WriteFile(raw, bytes.Repeat([]byte{1}, 16<<20), 0o644))
	if _, err := Flash(context.Background(), FlashOptions{Image: raw, Device: raw}); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("flash to a file: %v, want not a block device", err)
	}
	if _, err := Flash(context.Background(), FlashOptions{Image: raw, Device: dev}); err == nil || !strings.Contains(err.Error(), "the image needs 16.0 MiB") {
		t.Errorf("flash to a small device: %v, want the sizes named", err)
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 is not installed")
	}
	if out, err := exec.Command("mkfs.ext4", "-q", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a loop device here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	small := filepath.Join(dir, "small.img")
	must(t, os.WriteFile(small, []byte("x"), 0o644))
	_, err := Flash(context.Background(), FlashOptions{Image: small, Device: dev})
	if err == nil || !strings.Contains(err.Error(), "is mounted (on "+mnt+")") {
		t.Errorf("flash to a mounted device: %v, want it refused naming the mount", err)
	}
}
