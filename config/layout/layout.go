// Package layout names what the image builder writes and the init reads:
// files in the image, the kernel command line's cairn.system parameter and
// the modules stage 1 loads. Both sides import it, so they cannot disagree.
package layout

const (
	// BoardFile is the board's data file, copied into the initramfs and
	// the system image.
	BoardFile = "/etc/cairn/board.yaml"
	// ConfigFile is a cloud-config baked into the system image at build
	// time (0600).
	ConfigFile = "/etc/cairn/config.yaml"
	// SystemImage is the system image (squashfs) inside a live initramfs.
	SystemImage = "/system.sqfs"
	// StateDir holds the node's state: on the STATE partition when the
	// image has one, in RAM otherwise.
	StateDir = "/var/lib/cairn"
	// ManifestsDir holds manifest files (*.yaml, *.yml, *.json) the
	// servers apply besides kubernetes.manifests, as k3s applies its
	// server/manifests directory; write_files writes them. It is on STATE
	// when the node has one, so a file stays there until it is removed.
	ManifestsDir = StateDir + "/manifests"
)

// SystemParam is the kernel command line parameter that tells stage 1
// where the system image is; its values are the System* constants.
const SystemParam = "cairn.system"

// SystemLive says the system image is SystemImage inside the initramfs
// (ISO, PXE and -kernel boots).
const SystemLive = "live"

// SystemDisk says the system image is a slot partition of a disk: the one
// SlotParam names.
const SystemDisk = "disk"

// SlotParam names the A/B slot a disk boot runs from: SlotA or SlotB.
const SlotParam = "cairn.slot"

// The two system slots of a disk.
const (
	SlotA = "a"
	SlotB = "b"
)

// SlotLabel is the GPT partition name of a slot's system image.
func SlotLabel(slot string) string { return "cairn-" + slot }

// StateLabel is the GPT partition name and the ext4 label of the STATE
// partition, which the init grows to fill the disk and mounts for the
// node's state.
const StateLabel = "cairn-state"

// StateBind is a directory of STATE bound over a path of the running
// system.
type StateBind struct{ Dir, Target string }

// StateBinds are what STATE holds for the node: its own state, kubelet's,
// containerd's, and the logs.
var StateBinds = []StateBind{
	{StateCairnDir, StateDir},
	{"kubelet", "/var/lib/kubelet"},
	{"containerd", "/var/lib/containerd"},
	{"log", "/var/log"},
}

// ESPLabel is the GPT partition name of the EFI system partition.
const ESPLabel = "ESP"

// ESPDir is the directory of the EFI system partition that holds each
// slot's kernel and initramfs (ESPDir/a/vmlinuz, ESPDir/a/initrd.img).
const ESPDir = "/EFI/cairn"

// EntryPrefix starts the name of every cairn boot loader entry
// (loader/entries/cairn-a+3.conf, with systemd-boot's boot counter).
const EntryPrefix = "cairn-"

// PiConfig and PiTryboot are the Raspberry Pi firmware's config files on
// the boot partition: the one it always reads, and the one it reads instead
// for the single boot after `reboot "0 tryboot"`. Each names the slot it
// boots with os_prefix=<slot>/.
const (
	PiConfig  = "config.txt"
	PiTryboot = "tryboot.txt"
)

// TrybootFlag is where the Pi firmware says (nonzero) that it booted from
// tryboot.txt.
const TrybootFlag = "/proc/device-tree/chosen/bootloader/tryboot"

// Stage1Modules are what stage 1 of the init loads on every board, besides
// the board's own list: finding and mounting the system image (loop,
// squashfs, overlay), the STATE partition (ext4), the EFI system partition
// and config volumes (vfat, with the code pages and Debian's default FAT
// charset, ascii) and iso9660 NoCloud seeds. The builder puts these,
// the board's modules and their dependencies into the initramfs.
var Stage1Modules = []string{
	"loop", "squashfs", "overlay",
	"ext4", "crc32c",
	"vfat", "nls_cp437", "nls_iso8859_1", "nls_utf8", "nls_ascii",
	"isofs",
}

// TrialFile is, under StateDir (the STATE partition's cairn directory), the
// record of an upgrade's trial boot: the slot written, the upgrade, and,
// after a failed trial, why. Stage 1 leaves a slot it names on trial
// instead of marking it booted; stage 2 judges the node's health.
const TrialFile = "upgrade/trial.json"

// StateMount is where stage 1 mounts the STATE partition.
const StateMount = "/run/cairn/state"

// StateCairnDir is STATE's directory bound over StateDir.
const StateCairnDir = "cairn"
