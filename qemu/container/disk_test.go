package container

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-os/cairn/config/layout"
)

// TestNewDiskEntry: a node directory's loader entry is the image
// builder's and an upgrade's (layout.LoaderEntry), not a shape of its own.
func TestNewDiskEntry(t *testing.T) {
	sys := filepath.Join(t.TempDir(), "system.sqfs")
	os.WriteFile(sys, []byte("hsqs"), 0o644)
	dir := filepath.Join(t.TempDir(), "disk")
	if err := NewDisk(dir, sys, nil, nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, layout.ContainerESP, "loader/entries", layout.EntryPrefix+"a.conf"))
	want := layout.LoaderEntry("a", "", 1, "cairn.system=disk cairn.slot=a")
	if err != nil || string(got) != want {
		t.Errorf("the loader entry: %v\n%s\nwant\n%s", err, got, want)
	}
}
