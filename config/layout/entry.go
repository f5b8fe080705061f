package layout

import (
	"fmt"
	"strings"
)

// LoaderEntry is the systemd-boot entry (loader/entries/cairn-SLOT.conf,
// with a boot counter while it is on trial) that boots slot: the one the
// image builder writes for slot A, the one an upgrade writes for the slot
// it wrote, and a container platform's node directory's. The cairn entries
// share one sort key, so the loader (or the container platform's launcher,
// which reads only the version and the options) prefers the highest
// version whose tries are not spent. title says what runs (a version; may
// be empty).
func LoaderEntry(slot, title string, version int64, cmdline string) string {
	name := "cairn"
	if title != "" {
		name += " " + title
	}
	dir := ESPDir + "/" + slot
	return fmt.Sprintf("title %s (slot %s)\nsort-key cairn\nversion %d\nlinux %s/vmlinuz\ninitrd %s/initrd.img\noptions %s\n",
		name, strings.ToUpper(slot), version, dir, dir, cmdline)
}
