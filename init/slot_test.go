package main

import (
	"testing"

	"github.com/cairn-os/cairn/init/cmdline"
)

// TestSystemSlot: the slot an upgrade writes beside and the trial watches
// is the command line's only where the slots are this system's: a disk
// boot, or a container-platform node on a node directory (-disk). A -root
// container given cairn.system=disk on its -cmdline has none, so it never
// looks for partitions on the host's disks.
func TestSystemSlot(t *testing.T) {
	const line = "cairn.system=disk cairn.slot=b"
	for _, tc := range []struct {
		name     string
		platform Platform
		disk     bool
		line     string
		want     string
	}{
		{"a disk boot", Metal, false, line, "b"},
		{"a live boot", Metal, false, "cairn.system=live", ""},
		{"a node directory", Container, true, line, "b"},
		{"a -root container told it boots a disk", Container, false, line, ""},
		{"a -root container", Container, false, "cairn.platform=container", ""},
	} {
		st := &initState{platform: tc.platform, disk: tc.disk, cmdline: cmdline.Parse(tc.line)}
		if got := st.system().Slot; got != tc.want {
			t.Errorf("%s: the system's slot is %q, want %q", tc.name, got, tc.want)
		}
		if got := st.slot(); got != tc.want {
			t.Errorf("%s: the trial watches slot %q, want %q", tc.name, got, tc.want)
		}
	}
}
