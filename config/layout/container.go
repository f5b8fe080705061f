package layout

// A container-platform node that can be upgraded boots from a directory
// standing in for its disk (the init's -disk flag): qemu/container makes it,
// the init's launcher picks the slot to boot from its loader entries, and
// the init reads and writes it as it does a disk's partitions (init/boot's
// media). Its files, relative to the directory:
const (
	// ContainerESP is the boot partition's stand-in: loader/entries/ with
	// systemd-boot's names and boot counting (cairn-a.conf,
	// cairn-b+1.conf), and what an upgrade writes beside an entry.
	ContainerESP = "esp"
	// ContainerState is STATE's stand-in: its directories (StateBinds)
	// are bound over the running system's state paths.
	ContainerState = "state"
	// ContainerConfig is the node's cloud-config, bound over ConfigFile:
	// the container platform's node config replaces a baked-in one.
	ContainerConfig = "config.yaml"
	// ContainerImages holds image archives (.tar) the node imports at boot
	// besides the system image's own, each bound into ImagesDir.
	ContainerImages = "images"
	// ContainerDiskMount is where the running node sees the directory.
	ContainerDiskMount = "/run/cairn/disk"
)

// ContainerSlot is the file of a slot (SlotA, SlotB) in the directory: a
// system image (squashfs), as a disk's slot partition holds it.
func ContainerSlot(slot string) string { return "slot-" + slot + ".sqfs" }

// ImagesDir is where a system image holds the image archives (.tar) its
// worker imports into containerd at boot.
const ImagesDir = "/usr/share/cairn/images"
