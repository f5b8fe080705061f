package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/cairn-os/cairn/boards"
)

// TestDiskImage builds disk.img for each QEMU board and reads it back the
// way firmware and the init do: the GPT, the ESP's files, the system image
// in slot A, and STATE's ext4 superblock. Two builds are byte-identical.
func TestDiskImage(t *testing.T) {
	for _, board := range []string{"qemu-x86_64", "qemu-arm64"} {
		t.Run(board, func(t *testing.T) {
			b, err := boards.Load(board)
			must(t, err)
			initBin, _, err := buildInit(context.Background(), "", b.Arch, t.TempDir(), nil)
			must(t, err)
			o := Options{Board: board, Out: t.TempDir(), Init: initBin, Formats: []string{"disk"}, SourceDateEpoch: 1700000000}
			res := build(t, o)
			img := filepath.Join(res.Dir, "disk.img")
			d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
			must(t, err)
			defer d.Close()
			pt, err := d.GetPartitionTable()
			must(t, err)
			table := pt.(*gpt.Table)
			var names []string
			for _, p := range table.Partitions {
				names = append(names, p.Name)
			}
			if strings.Join(names, " ") != "ESP cairn-a cairn-b cairn-state" {
				t.Fatalf("partitions %q, want ESP cairn-a cairn-b cairn-state", names)
			}

			esp, err := d.GetFilesystem(1)
			must(t, err)
			want := map[string]string{
				"/EFI/BOOT/" + efiBootName[b.Arch]: "",
				"/loader/loader.conf":              "default cairn-*",
				"/loader/entries/cairn-a+3.conf":   "cairn.system=disk cairn.slot=a",
				"/EFI/cairn/a/vmlinuz":             "",
				"/EFI/cairn/a/initrd.img":          "",
			}
			for path, text := range want {
				f, err := esp.OpenFile(path, os.O_RDONLY)
				if err != nil {
					t.Errorf("ESP %s: %v", path, err)
					continue
				}
				data, err := io.ReadAll(f)
				must(t, err)
				if len(data) == 0 || !strings.Contains(string(data), text) {
					t.Errorf("ESP %s (%d bytes) does not hold %q", path, len(data), text)
				}
			}

			sys := res.Info.SystemImage
			slotA := readPart(t, img, table.Partitions[1], sys.Size)
			if sum := sha256.Sum256(slotA); hex.EncodeToString(sum[:]) != sys.SHA256 {
				t.Errorf("slot A does not start with the system image %s", sys.SHA256)
			}
			sb := readPart(t, img, table.Partitions[3], 2048)
			if sb[1024+0x38] != 0x53 || sb[1024+0x39] != 0xef {
				t.Error("STATE holds no ext4 superblock")
			}
			if label := string(bytes.TrimRight(sb[1024+0x78:1024+0x88], "\x00")); label != "cairn-state" {
				t.Errorf("STATE's label is %q, want cairn-state", label)
			}

			c, err := Inspect(img)
			must(t, err)
			for i, want := range []string{"1 ESP: FAT32", "2 cairn-a: squashfs", "3 cairn-b: empty", "4 cairn-state: ext4, 64.0 MiB"} {
				if i >= len(c.Parts) || !strings.HasPrefix(c.Parts[i], want) {
					t.Errorf("inspect: partitions %q, want %q at %d", c.Parts, want, i)
				}
			}
			listed := map[string]bool{}
			for _, e := range c.Entries {
				listed[e.Path] = true
			}
			for _, p := range []string{"/ESP:/EFI/BOOT/" + efiBootName[b.Arch], "/ESP:/loader/entries/cairn-a+3.conf", "/cairn-a:/sbin/init", "/cairn-a:/etc/cairn/board.yaml", "/cairn-state:/lost+found"} {
				if !listed[p] {
					t.Errorf("inspect does not list %s", p)
				}
			}

			again := build(t, Options{Board: board, Out: t.TempDir(), Init: initBin, Formats: []string{"disk"}, SourceDateEpoch: 1700000000})
			if a, b := res.Info.Artifacts[0], again.Info.Artifacts[0]; a != b {
				t.Errorf("two builds of the same inputs differ: %+v and %+v", a, b)
			}
		})
	}
}

func readPart(t *testing.T, img string, p *gpt.Partition, n int64) []byte {
	t.Helper()
	f, err := os.Open(img)
	must(t, err)
	defer f.Close()
	buf := make([]byte, n)
	_, err = f.ReadAt(buf, int64(p.Start)*sector)
	must(t, err)
	return buf
}
