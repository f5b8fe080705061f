package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/config/upgrade"
)

// TestUpdateBundle builds update/ for each QEMU board and reads it the way
// `cairn upgrade` and a node do: update.json passes the contract's check
// and names each file by its sha256 and size, the files are disk.img's
// (slot A, the ESP's kernel and stage-1 initramfs), the command line is the
// disk boot's without a slot, and the system's os-release carries the
// version. Two builds are byte-identical. One board: the format has
// nothing per architecture, and TestBuildIsReproducible builds both QEMU
// boards' bundles (their default formats) twice.
func TestUpdateBundle(t *testing.T) {
	for _, board := range []string{"qemu-x86_64"} {
		t.Run(board, func(t *testing.T) {
			b, err := boards.Load(board)
			must(t, err)
			initBin, _, err := buildInit(context.Background(), "", b.Arch, t.TempDir(), nil)
			must(t, err)
			o := Options{Board: board, Out: t.TempDir(), Init: initBin, Formats: []string{"kernel", "disk", "update"}, Version: "v9.8.7-rc.1+abc"}
			res := build(t, o)
			dir := filepath.Join(res.Dir, upgrade.BundleDir)
			js, err := os.ReadFile(filepath.Join(dir, upgrade.BundleFile))
			must(t, err)
			var u upgrade.Bundle
			must(t, json.Unmarshal(js, &u))
			if err := u.Check(); err != nil {
				t.Fatalf("update.json: %v\n%s", err, js)
			}
			wantCmdline := strings.TrimSpace(b.Cmdline) + " " + layout.SystemParam + "=" + layout.SystemDisk
			if u.Board != board || u.Arch != b.Arch || u.Version != o.Version || u.Epoch != 1700000000 || u.Cmdline != wantCmdline {
				t.Errorf("update.json is %+v; want board %s, arch %s, version %s, epoch 1700000000, cmdline %q", u, board, b.Arch, o.Version, wantCmdline)
			}
			for _, f := range u.Files {
				data, err := os.ReadFile(filepath.Join(dir, f.Name))
				must(t, err)
				if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(data)) != f.Size {
					t.Errorf("%s: update.json says sha256 %s size %d, the file is %x size %d", f.Name, f.SHA256, f.Size, sum, len(data))
				}
			}
			if f, _ := u.File(upgrade.SystemFile); f.SHA256 != res.Info.SystemImage.SHA256 || f.Size != res.Info.SystemImage.Size {
				t.Errorf("system.sqfs is %+v, the build's system image %+v", f, res.Info.SystemImage)
			}
			same(t, filepath.Join(dir, upgrade.KernelFile), filepath.Join(res.Dir, "vmlinuz"), false)
			same(t, filepath.Join(dir, upgrade.InitrdFile), filepath.Join(res.Dir, "initramfs.img"), true)
			img := filepath.Join(res.Dir, "disk.img")
			d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
			must(t, err)
			defer d.Close()
			esp, err := d.GetFilesystem(1)
			must(t, err)
			for _, name := range []string{upgrade.KernelFile, upgrade.InitrdFile} {
				r, err := esp.OpenFile(layout.ESPDir+"/a/"+name, os.O_RDONLY)
				must(t, err)
				onESP, err := io.ReadAll(r)
				must(t, err)
				inBundle, err := os.ReadFile(filepath.Join(dir, name))
				must(t, err)
				if !bytes.Equal(onESP, inBundle) {
					t.Errorf("%s: the ESP's (%d bytes) is not the bundle's (%d bytes)", name, len(onESP), len(inBundle))
				}
			}
			pt, err := d.GetPartitionTable()
			must(t, err)
			sys, err := os.ReadFile(filepath.Join(dir, upgrade.SystemFile))
			must(t, err)
			if slotA := readPart(t, img, pt.(*gpt.Table).Partitions[1], int64(len(sys))); !bytes.Equal(slotA, sys) {
				t.Error("slot A does not start with the bundle's system.sqfs")
			}

			rel := readSquashfsFile(t, filepath.Join(dir, upgrade.SystemFile), osRelease)
			for _, want := range []string{"\nPRETTY_NAME=\"cairn v9.8.7-rc.1+abc\"\n", "\nVERSION_ID=v9.8.7-rc.1+abc\n"} {
				if !strings.Contains("\n"+rel, want) {
					t.Errorf("os-release lacks %q:\n%s", strings.TrimSpace(want), rel)
				}
			}

			// Dropped caches: the second build makes its own images.
			os.RemoveAll(filepath.Join(testCache(), "squashfs"))
			os.RemoveAll(filepath.Join(testCache(), "initramfs"))
			o.Out = t.TempDir()
			again := build(t, o)
			for _, name := range append([]string{upgrade.BundleFile}, upgrade.BundleFiles...) {
				same(t, filepath.Join(dir, name), filepath.Join(again.Dir, upgrade.BundleDir, name), false)
			}
		})
	}
}

// TestUpdateBundleRefusals: a board that boots no disk (neither a UEFI
// loader nor firmware of its own) has no bundle, a Raspberry Pi has one,
// and a version the bundle's contract refuses fails the build.
func TestUpdateBundleRefusals(t *testing.T) {
	if _, err := lookupFormats([]string{"update"}, &boards.Board{Name: "bare"}); err == nil || !strings.Contains(err.Error(), "format update: board bare names neither a UEFI boot loader") {
		t.Errorf("update for a board without a boot loader or firmware: %v; want the board refused", err)
	}
	pi, err := boards.Load("rpi4")
	must(t, err)
	if _, err := lookupFormats([]string{"sdcard", "update"}, pi); err != nil {
		t.Errorf("update for rpi4: %v; want it built (the node's tryboot upgrade)", err)
	}
	_, err = Options{Board: "qemu-x86_64", Kernel: "x", Out: t.TempDir(), Version: "1.0 final"}.check()
	if err == nil || !strings.Contains(err.Error(), `--version: version "1.0 final"`) {
		t.Errorf("--version with a space: %v; want it refused", err)
	}
}

func TestVersionOSRelease(t *testing.T) {
	for _, c := range []struct{ in, version, want string }{
		{"NAME=\"cairn\"\nID=cairn\nPRETTY_NAME=\"cairn\"\n", "v1.2.0", "NAME=\"cairn\"\nID=cairn\nPRETTY_NAME=\"cairn v1.2.0\"\nVERSION_ID=v1.2.0\n"},
		{"PRETTY_NAME=cairn\nVERSION_ID=old", "v2-3-gabc-dirty", "PRETTY_NAME=\"cairn v2-3-gabc-dirty\"\nVERSION_ID=v2-3-gabc-dirty\n"},
		{"PRETTY_NAME='my os'\n", "a$b", "PRETTY_NAME=\"my os a\\$b\"\nVERSION_ID=\"a\\$b\"\n"},
	} {
		tr := tree{}
		tr.bytes(osRelease, 0o644, []byte(c.in))
		must(t, versionOSRelease(tr, c.version))
		if got := string(tr[osRelease].data); got != c.want {
			t.Errorf("os-release %q with version %s:\n%s\nwant:\n%s", c.in, c.version, got, c.want)
		}
	}
}

// same reports whether the file a is the file b, or with prefix set the
// start of b.
func same(t *testing.T, a, b string, prefix bool) {
	t.Helper()
	x, err := os.ReadFile(a)
	must(t, err)
	y, err := os.ReadFile(b)
	must(t, err)
	if prefix && len(y) > len(x) {
		y = y[:len(x)]
	}
	if len(x) == 0 || !bytes.Equal(x, y) {
		what := "is not"
		if prefix {
			what = "is not the start of"
		}
		t.Errorf("%s (%d bytes) %s %s", a, len(x), what, b)
	}
}

func readSquashfsFile(t *testing.T, img, path string) string {
	t.Helper()
	f, err := os.Open(img)
	must(t, err)
	defer f.Close()
	st, err := f.Stat()
	must(t, err)
	sq, err := squashfs.Read(file.New(f, true), st.Size(), 0, 0)
	must(t, err)
	r, err := sq.OpenFile(path, os.O_RDONLY)
	must(t, err)
	data, err := io.ReadAll(r)
	must(t, err)
	return string(data)
}
