package boot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config/layout"
)

// entries writes loader entries (name → version) into a new directory.
func entries(t *testing.T, es map[string]int) string {
	t.Helper()
	dir := t.TempDir()
	for name, v := range es {
		slot := entrySlot(name)
		data := layout.LoaderEntry(slot, "v", int64(v), "cairn.system=disk "+layout.SlotParam+"="+slot)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	n, err := entryNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNextBoot: the container platform's loader picks entries as
// systemd-boot does and counts a try before the boot.
func TestNextBoot(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries map[string]int
		slot    string
		after   []string
	}{
		{"one trusted entry", map[string]int{"cairn-a.conf": 1}, "a", []string{"cairn-a.conf"}},
		{"the first boot counts", map[string]int{"cairn-a+3.conf": 1}, "a", []string{"cairn-a+2-1.conf"}},
		{"a new slot on trial goes first", map[string]int{"cairn-a.conf": 1, "cairn-b+1.conf": 2}, "b", []string{"cairn-a.conf", "cairn-b+0-1.conf"}},
		{"its try spent, the last good one", map[string]int{"cairn-a.conf": 1, "cairn-b+0-1.conf": 2}, "a", []string{"cairn-a.conf", "cairn-b+0-1.conf"}},
		{"the newest of two good ones", map[string]int{"cairn-a.conf": 3, "cairn-b.conf": 2}, "a", []string{"cairn-a.conf", "cairn-b.conf"}},
		{"a spent entry when nothing else is left", map[string]int{"cairn-b+0-3.conf": 2}, "b", []string{"cairn-b+0-3.conf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := entries(t, tc.entries)
			slot, said, err := NextBoot(dir, ".")
			if err != nil || slot != tc.slot {
				t.Fatalf("NextBoot = %q (%q), %v; want slot %s", slot, said, err, tc.slot)
			}
			if got := names(t, dir); !slices.Equal(got, tc.after) {
				t.Errorf("entries after: %v; want %v", got, tc.after)
			}
		})
	}
	if _, _, err := NextBoot(t.TempDir(), "."); err == nil || !strings.Contains(err.Error(), "nothing to boot") {
		t.Errorf("no entries: %v", err)
	}
}

// TestContainerSlots runs the upgrade's own calls (WriteSlot, OnTrial,
// RejectSlot, Bless, DropSlot, BlessSlot) on a node directory and the
// loader between them: a failed trial falls back to the old slot, a kept
// one boots from then on, and a slot file linked to other nodes' is
// replaced, never written through.
func TestContainerSlots(t *testing.T) {
	dir := t.TempDir()
	defer func(m media) { machine = m }(machine)
	machine = containerMedia{dir: dir}
	esp := filepath.Join(dir, layout.ContainerESP, "loader/entries")
	os.MkdirAll(esp, 0o755)
	os.WriteFile(filepath.Join(esp, "cairn-a.conf"), []byte(layout.LoaderEntry("a", "v1", 1, "cairn.slot=a")), 0o644)
	shared := filepath.Join(t.TempDir(), "system-v1.sqfs")
	os.WriteFile(shared, []byte("hsqs version 1"), 0o644)
	if err := os.Link(shared, filepath.Join(dir, layout.ContainerSlot("a"))); err != nil {
		t.Fatal(err)
	}
	newSystem := func(content string) NewSystem { return testSystem(t, content, "cairn.system=disk") }
	trial := filepath.Join(dir, "state/cairn", layout.TrialFile)
	printf := func(string, ...any) {}
	next := func(want string) {
		t.Helper()
		slot, said, err := NextBoot(esp, ".")
		if err != nil || slot != want {
			t.Fatalf("the loader boots %q (%s, %v); want slot %s; entries %v", slot, said, err, want, names(t, esp))
		}
	}

	// A trial that fails: back on A, B's entry dropped.
	if err := WriteSlot("b", newSystem("hsqs version 2"), &Trial{Slot: "b", FromSlot: "a"}, trial, printf); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, layout.ContainerSlot("b"))); string(data) != "hsqs version 2" {
		t.Errorf("slot B holds %q", data)
	}
	next("b")
	if OnTrial("b") == "" {
		t.Error("slot B is not on trial after its first boot")
	}
	if err := RejectSlot("b"); err != nil {
		t.Fatal(err)
	}
	next("a")
	if err := (Bless{Slot: "a"}).Run(); err != nil {
		t.Fatal(err)
	}
	if OnTrial("a") != "" {
		t.Error("slot A is on trial")
	}
	if err := DropSlot("b"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, esp); !slices.Equal(got, []string{"cairn-a.conf"}) {
		t.Errorf("entries after the failed trial: %v", got)
	}

	// A trial that is kept: B from then on.
	if err := WriteSlot("b", newSystem("hsqs version 2"), &Trial{Slot: "b", FromSlot: "a"}, trial, printf); err != nil {
		t.Fatal(err)
	}
	next("b")
	if err := BlessSlot("b"); err != nil {
		t.Fatal(err)
	}
	next("b")
	next("b")
	if Upgradable("b") != "" {
		t.Errorf("a node directory is not upgradable: %s", Upgradable("b"))
	}

	// Slot A is linked to another node's: written anew.
	if err := WriteSlot("a", newSystem("hsqs version 3"), &Trial{Slot: "a", FromSlot: "b"}, trial, printf); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(shared); string(data) != "hsqs version 1" {
		t.Errorf("the shared slot file was written through: %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, layout.ContainerSlot("a"))); string(data) != "hsqs version 3" {
		t.Errorf("slot A holds %q", data)
	}
	next("a")
}

// TestNextBootHostile: the launcher runs on the host, as root, over loader
// entries the node writes. It never follows a link out of the directory,
// never waits on a FIFO, never reads more than an entry's bound, refuses a
// directory of hundreds of entries, and says which entry it skipped.
func TestNextBootHostile(t *testing.T) {
	entry := func(slot string, version int64) []byte {
		return []byte(layout.LoaderEntry(slot, "v", version, "cairn.system=disk "+layout.SlotParam+"="+slot))
	}
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir string)
		slot    string // the slot booted; "" for an error
		console string // what the console or the error says
	}{
		{"an entry linking to a host file", func(t *testing.T, dir string) {
			host := filepath.Join(t.TempDir(), "loader.conf")
			os.WriteFile(host, entry("b", 99), 0o644)
			os.Symlink(host, filepath.Join(dir, "cairn-b.conf"))
		}, "a", "loader entry cairn-b.conf in " + "DIR skipped: it is a symbolic link"},
		{"an entry linking to /dev/zero", func(t *testing.T, dir string) {
			os.Symlink("/dev/zero", filepath.Join(dir, "cairn-b.conf"))
		}, "a", "cairn-b.conf in DIR skipped: it is a symbolic link"},
		{"a FIFO", func(t *testing.T, dir string) {
			if err := unix.Mkfifo(filepath.Join(dir, "cairn-b+1.conf"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "a", "cairn-b+1.conf in DIR skipped: it is not a regular file"},
		{"a directory", func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, "cairn-b.conf"), 0o755)
		}, "a", "cairn-b.conf in DIR skipped: it is not a regular file"},
		{"an entry past the bound", func(t *testing.T, dir string) {
			data := append(entry("b", 99), strings.Repeat("#\n", 32<<10)...)
			os.WriteFile(filepath.Join(dir, "cairn-b.conf"), data, 0o644)
		}, "a", "cairn-b.conf in DIR skipped: it is larger than 65536 bytes"},
		{"hundreds of entries", func(t *testing.T, dir string) {
			for i := range 300 {
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("cairn-b+1-%d.conf", i)), entry("b", 2), 0o644)
			}
		}, "", "more than 64 cairn entries; refusing them all"},
		{"other files pass unread", func(t *testing.T, dir string) {
			for i := range 300 {
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("notes-%d.txt", i)), nil, 0o644)
			}
		}, "a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := entries(t, map[string]int{"cairn-a.conf": 1})
			tc.setup(t, dir)
			var console bytes.Buffer
			old := slog.Default()
			slog.SetDefault(slog.New(slog.NewTextHandler(&console, nil)))
			defer slog.SetDefault(old)
			type result struct {
				slot string
				err  error
			}
			done := make(chan result, 1)
			go func() {
				slot, _, err := NextBoot(dir, ".")
				done <- result{slot, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(time.Minute):
				t.Fatal("NextBoot hangs")
			}
			said := strings.ReplaceAll(tc.console, "DIR", dir)
			switch {
			case tc.slot == "":
				if r.err == nil || !strings.Contains(r.err.Error(), said) {
					t.Errorf("NextBoot = %q, %v; want an error saying %q", r.slot, r.err, said)
				}
			case r.err != nil || r.slot != tc.slot:
				t.Errorf("NextBoot = %q, %v; want slot %s", r.slot, r.err, tc.slot)
			case !strings.Contains(console.String(), said):
				t.Errorf("the console says %q; want %q", console.String(), said)
			}
		})
	}

	// The entries directory, or the ESP above it, a link (its node made
	// it one): refused, never followed.
	dir := entries(t, map[string]int{"cairn-a.conf": 1})
	disk := t.TempDir()
	os.Symlink(dir, filepath.Join(disk, "entries"))
	os.MkdirAll(filepath.Join(dir, "esp-target/loader"), 0o755)
	os.Rename(entries(t, map[string]int{"cairn-a.conf": 1}), filepath.Join(dir, "esp-target/loader/entries"))
	os.Symlink(filepath.Join(dir, "esp-target"), filepath.Join(disk, "esp"))
	for _, rel := range []string{"entries", "esp/loader/entries"} {
		if _, _, err := NextBoot(disk, rel); err == nil || !strings.Contains(err.Error(), "is a symbolic link, or its path crosses one; refusing it") {
			t.Errorf("entries through a link (%s): %v; want a refusal", rel, err)
		}
	}
}

// testSystem is a new system of version v2 in a temporary directory: its
// system image holds content, its kernel and initramfs "kernel 2" and
// "initrd 2", its command line cmdline.
func testSystem(t *testing.T, content, cmdline string) NewSystem {
	src := t.TempDir()
	sum := sha256.Sum256([]byte(content))
	s := NewSystem{System: filepath.Join(src, "system.sqfs"), Kernel: filepath.Join(src, "vmlinuz"), Initrd: filepath.Join(src, "initrd.img"),
		SystemSHA256: hex.EncodeToString(sum[:]), Version: "v2", Cmdline: cmdline}
	os.WriteFile(s.System, []byte(content), 0o644)
	os.WriteFile(s.Kernel, []byte("kernel 2"), 0o644)
	os.WriteFile(s.Initrd, []byte("initrd 2"), 0o644)
	return s
}
