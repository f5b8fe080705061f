package boot

import (
	"path/filepath"
	"testing"

	"github.com/cairn-os/cairn/config/layout"
)

func TestEntryVersion(t *testing.T) {
	e := layout.LoaderEntry("b", "e2e-2", 1700000001, "console=ttyS0 cairn.system=disk cairn.slot=b")
	if v := entryVersion([]byte(e)); v != 1700000001 {
		t.Errorf("version %d from\n%s", v, e)
	}
	for name, want := range map[string]string{
		"cairn-a.conf": "a", "cairn-b+1.conf": "b", "cairn-b+0-3.conf": "b", "cairn-live.conf": "", "other.conf": "",
	} {
		if got := entrySlot(name); got != want {
			t.Errorf("entrySlot(%s) = %q, want %q", name, got, want)
		}
	}
}

func TestTrialRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "upgrade", "trial.json")
	if rec, err := ReadTrial(path); rec != nil || err != nil {
		t.Fatalf("no record: %v %v", rec, err)
	}
	want := &Trial{Upgrade: "upgrade-1", Slot: "b", FromSlot: "a", Version: "v2", FromVersion: "v1", HealthTimeout: "15m0s"}
	if err := WriteTrial(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTrial(path)
	if err != nil || got.Slot != "b" || got.FromVersion != "v1" {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if err := RemoveTrial(path); err != nil {
		t.Fatal(err)
	}
	if rec, _ := ReadTrial(path); rec != nil {
		t.Fatal("removed, still read")
	}
}
