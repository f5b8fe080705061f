package datasource

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run runs a tool the test needs, skipping when it is not installed.
func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (Debian: dosfstools, mtools, cloud-image-utils, genisoimage, xorriso)", name)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// seedFiles writes files (path → content) into dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// vfatImage makes a FAT image of sizeMB with mkfs.vfat and copies the tree
// in with mtools, as a user making a seed by hand would.
func vfatImage(t *testing.T, label string, sizeMB int, fatBits string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "seed.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(sizeMB) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	args := []string{"-n", label}
	if fatBits != "" {
		args = append(args, "-F", fatBits)
	}
	run(t, "mkfs.vfat", append(args, img)...)
	src := filepath.Join(dir, "src")
	writeTree(t, src, files)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		run(t, "mcopy", "-s", "-i", img, filepath.Join(src, e.Name()), "::"+e.Name())
	}
	return img
}

// isoImage makes an ISO with the given mkisofs-style tool and flags.
func isoImage(t *testing.T, tool string, flags []string, label string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeTree(t, src, files)
	img := filepath.Join(dir, "seed.iso")
	args := append([]string{}, flags...)
	args = append(args, "-V", label, "-o", img, src)
	run(t, tool, args...)
	return img
}

var seed = map[string]string{
	"user-data":      "#cloud-config\nhostname: from-user-data\n",
	"meta-data":      "instance-id: iid-1\nlocal-hostname: from-meta\n",
	"network-config": "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n",
}

func TestVolumeReaders(t *testing.T) {
	big := strings.Repeat("write_files: # long enough to span clusters\n", 400)
	cases := []struct {
		name   string
		image  func(t *testing.T) string
		fstype string
		label  string
		files  map[string]string
	}{
		{"vfat FAT12 lowercase label", func(t *testing.T) string { return vfatImage(t, "cidata", 2, "", seed) }, "vfat", "cidata", seed},
		{"vfat FAT16 uppercase label", func(t *testing.T) string { return vfatImage(t, "CIDATA", 32, "16", seed) }, "vfat", "CIDATA", seed},
		{"vfat FAT32 with a multi-cluster file", func(t *testing.T) string {
			return vfatImage(t, "CIDATA", 64, "32", map[string]string{"user-data": big})
		}, "vfat", "CIDATA", map[string]string{"user-data": big}},
		{"vfat config drive with directories", func(t *testing.T) string {
			return vfatImage(t, "config-2", 2, "", map[string]string{"openstack/latest/user_data": "#cloud-config\n"})
		}, "vfat", "config-2", map[string]string{"openstack/latest/user_data": "#cloud-config\n"}},
		{"iso9660 from cloud-localds", func(t *testing.T) string {
			dir := t.TempDir()
			writeTree(t, dir, seed)
			img := filepath.Join(dir, "seed.iso")
			run(t, "cloud-localds", "--network-config="+filepath.Join(dir, "network-config"), img, filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data"))
			return img
		}, "iso9660", "cidata", seed},
		{"iso9660 Rock Ridge only", func(t *testing.T) string {
			return isoImage(t, "genisoimage", []string{"-rock"}, "cidata", seed)
		}, "iso9660", "cidata", seed},
		{"iso9660 from xorriso, Joliet and Rock Ridge, nested", func(t *testing.T) string {
			return isoImage(t, "xorriso", []string{"-as", "mkisofs", "-J", "-R"}, "config-2",
				map[string]string{"openstack/latest/user_data": big, "openstack/latest/meta_data.json": `{"hostname": "h"}`})
		}, "iso9660", "config-2", map[string]string{"openstack/latest/user_data": big, "openstack/latest/meta_data.json": `{"hostname": "h"}`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.Open(c.image(t))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			v, fstype, err := openVolume(f)
			if err != nil {
				t.Fatalf("openVolume: %v", err)
			}
			if fstype != c.fstype || v.Label() != c.label {
				t.Errorf("got %s labelled %q, want %s labelled %q", fstype, v.Label(), c.fstype, c.label)
			}
			for name, want := range c.files {
				got, err := v.ReadFile(name)
				if err != nil {
					t.Errorf("ReadFile(%q): %v", name, err)
					continue
				}
				if string(got) != want {
					t.Errorf("ReadFile(%q) = %q..., want %q...", name, trunc(got), trunc([]byte(want)))
				}
			}
			if _, err := v.ReadFile("vendor-data"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ReadFile of a missing file: got %v, want fs.ErrNotExist", err)
			}
		})
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40])
	}
	return string(b)
}

func TestOpenVolumeRejectsOtherData(t *testing.T) {
	for name, data := range map[string][]byte{
		"zeros":  make([]byte, 1<<20),
		"short":  []byte("hello"),
		"random": []byte(strings.Repeat("\x55\xaa\x00\xff", 1<<16)),
	} {
		if _, _, err := openVolume(bytesReaderAt(data)); err == nil {
			t.Errorf("%s: recognised as a filesystem", name)
		}
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, errors.New("EOF")
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, errors.New("EOF")
	}
	return n, nil
}
