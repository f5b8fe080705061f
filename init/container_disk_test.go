package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/init/boot"
)

// TestContainerDisk runs the real init on a node directory (-disk) whose
// slot B is on trial, as an upgrade leaves it: the launcher boots B (the
// try counted), the slot's own /sbin/init runs, misses the trial's health
// deadline (no node components), restarts, and the launcher boots slot A,
// whose init says B failed; SIGTERM then ends it. The slots are untouched
// and the entries are what a disk's would be.
func TestContainerDisk(t *testing.T) {
	skipUnlessContainer(t)
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("needs mksquashfs (squashfs-tools)")
	}
	launcher := buildInit(t)
	// The slots' own init runs inside them: a static one.
	static := filepath.Join(t.TempDir(), "init")
	cmd := exec.Command("go", "build", "-o", static, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	disk := t.TempDir()
	for _, slot := range []string{"a", "b"} {
		root := t.TempDir()
		systemImage(t, root, map[string]string{
			"etc/passwd":     "root:x:0:0:root:/root:/bin/false\n",
			"etc/group":      "root:x:0:\n",
			"etc/cairn/slot": slot + "\n",
		})
		os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
		data, _ := os.ReadFile(static)
		os.WriteFile(filepath.Join(root, "sbin/init"), data, 0o755)
		if out, err := exec.Command("mksquashfs", root, filepath.Join(disk, layout.ContainerSlot(slot)), "-noappend", "-quiet").CombinedOutput(); err != nil {
			t.Fatalf("mksquashfs: %v\n%s", err, out)
		}
	}
	entries := filepath.Join(disk, layout.ContainerESP, "loader/entries")
	os.MkdirAll(entries, 0o755)
	os.WriteFile(filepath.Join(entries, "cairn-a.conf"), []byte(layout.LoaderEntry("a", "v1", 1, "cairn.system=disk cairn.slot=a")), 0o644)
	os.WriteFile(filepath.Join(entries, "cairn-b+1.conf"), []byte(layout.LoaderEntry("b", "v2", 2, "cairn.system=disk cairn.slot=b")), 0o644)
	os.WriteFile(filepath.Join(disk, layout.ContainerConfig), []byte("#cloud-config\nhostname: box-2\n"), 0o600)
	trialPath := filepath.Join(disk, layout.ContainerState, layout.StateCairnDir, layout.TrialFile)
	if err := boot.WriteTrial(trialPath, &boot.Trial{Upgrade: "u1", Slot: "b", FromSlot: "a", Version: "v2", FromVersion: "v1", HealthTimeout: "3s"}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd = exec.CommandContext(ctx, launcher, "-platform", "container", "-disk", disk)
	// The launcher's own lines have no time.
	expect := startInit(t, ctx, cmd, "("+stamp+")?").expect
	expect(`init: boot: loader entry cairn-b\+0-1\.conf: slot B on trial, try 1 \(0 left after it\)`)
	expect(`boot: slot B runs cairn v2 on trial \(upgrade u1\); it is kept only once the node is healthy`)
	expect(`init: starting cairn \S+ on \w+ \(container\)`)
	expect(`upgrade: cairn v2 runs on trial from slot B \(upgrade u1\).*`)
	expect(`config: loaded from /etc/cairn/config\.yaml`)
	expect(`upgrade: cairn v2 on slot B is not kept: not healthy within 3s: .*; restarting into slot A \(cairn v1\)`)
	expect(`init: the node restarts`)
	expect(`init: boot: loader entry cairn-a\.conf: slot A`)
	expect(`(warning: )?boot: slot B failed to boot 1 times \(cairn-b\+0-1\.conf\); the boot loader fell back to slot A`)
	expect(`init: starting cairn \S+ on \w+ \(container\)`)
	expect(`init: this is box-2, with no address yet`)

	cmd.Process.Signal(syscall.SIGTERM)
	expect(`shutdown: powering off`)
	if err := cmd.Wait(); err != nil {
		t.Errorf("the launcher ended with %v, want status 0 after a poweroff", err)
	}
	names, _ := os.ReadDir(entries)
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	if want := []string{"cairn-a.conf", "cairn-b+0-1.conf"}; !slices.Equal(got, want) {
		t.Errorf("loader entries %v, want %v", got, want)
	}
	var rec boot.Trial
	if data, err := os.ReadFile(trialPath); err != nil || json.Unmarshal(data, &rec) != nil || !strings.HasPrefix(rec.Result, "not healthy within 3s") {
		t.Errorf("the trial record: %v %+v; want the reason it was not kept", err, rec)
	}
}
