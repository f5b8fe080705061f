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
)

// SystemParam is the kernel command line parameter that tells stage 1
// where the system image is; its values are the System* constants.
const SystemParam = "cairn.system"

// SystemLive says the system image is SystemImage inside the initramfs
// (ISO, PXE and -kernel boots).
const SystemLive = "live"

// Stage1Modules are what stage 1 of the init loads on every board, besides
// the board's own list: finding and mounting the system image (loop,
// squashfs, overlay), the STATE partition (ext4) and config volumes (vfat
// and iso9660 NoCloud seeds with their code pages). The builder puts these,
// the board's modules and their dependencies into the initramfs.
var Stage1Modules = []string{
	"loop", "squashfs", "overlay",
	"ext4", "crc32c",
	"vfat", "nls_cp437", "nls_iso8859_1", "nls_utf8",
	"isofs",
}
