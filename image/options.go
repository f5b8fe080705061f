package image

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/config/upgrade"
	report "github.com/cairn-os/cairn/image/progress"
)

// Options are a build's inputs. Board, Kernel and Out are required.
type Options struct {
	// Board is a board name from boards/ ("qemu-x86_64").
	Board string
	// Kernel is a linux-image .deb, or a directory holding the board's
	// (as `make kernels` fills out/debs). Formats with a boot loader find
	// its package (the board's bootloader.package) in the same directory.
	Kernel string
	// Out is the directory the artifacts are written to; it is created.
	Out string
	// Formats are the output formats to write (Formats lists them); empty
	// means the ones the board names.
	Formats []string
	// Init is the init to put in the image: a Go package directory to
	// build for the board's architecture (default: the repository's ./init)
	// or an already built static binary.
	Init string
	// Components is a directory holding linux-<arch>/ trees (make
	// components); empty means an image without node components.
	Components string
	// K3s is a k3s binary for kubernetes.distribution k3s, put in the
	// system image as /usr/bin/k3s; empty means none.
	K3s string
	// Config is a cloud-config file baked in as /etc/cairn/config.yaml;
	// it is validated first.
	Config string
	// Compression of the initramfs: "zstd" or "gzip"; empty means zstd
	// when the kernel can unpack it (CONFIG_RD_ZSTD), else gzip.
	Compression string
	// SquashfsLevel is the zstd level (1-22) of the system image; 0 means
	// DefaultSquashfsLevel.
	SquashfsLevel int
	// Modules are extra modules for the system image (and their
	// dependencies), beyond the board's and NodeModules.
	Modules []string
	// Version names the build: the init's version (-X main.version when
	// the init is built from source), the loader entry's title,
	// os-release's VERSION_ID and update.json's version. Empty means git
	// describe of the source tree ("dev" outside git), or for an init
	// given as a binary the version in its Go build information.
	Version string
	// SourceDateEpoch is the time every file gets; 0 means the
	// SOURCE_DATE_EPOCH environment variable, or 0 when that is unset.
	SourceDateEpoch int64
	// CacheDir holds unpacked kernels and built system images; default
	// $XDG_CACHE_HOME/cairn (~/.cache/cairn).
	CacheDir string
	// Progress, when set, reports the long steps (unpacking the kernel,
	// building the init, writing the images): progress.New(os.Stderr,
	// "cairn: build: ") draws bars on a terminal and plain lines elsewhere.
	Progress *report.Reporter
}

// Result says what a build wrote. Device trees the board lists (boards'
// dtbs) are written next to vmlinuz under their base names.
type Result struct {
	// Dir is Options.Out; the other paths are files in it. Vmlinuz,
	// Initramfs and Cmdline are set when the kernel format was built.
	Dir, Vmlinuz, Initramfs, Cmdline, Manifest string
	// CmdlineText is the kernel command line of a live boot.
	CmdlineText string
	// Manifest is what manifest.json holds.
	Info *Manifest
}

// settings are Options checked, with their defaults filled in. Making them
// reads nothing but the environment and the embedded board files.
type settings struct {
	board    *boards.Board
	rawBoard []byte
	formats  []format
	level    int
	epoch    int64
	cacheDir string
}

// check validates o and fills in the defaults.
func (o Options) check() (*settings, error) {
	b, err := boards.Load(o.Board)
	if err != nil {
		return nil, err
	}
	rawBoard, err := boards.Raw(o.Board)
	if err != nil {
		return nil, err
	}
	if o.Kernel == "" {
		return nil, errors.New("no kernel given; pass -kernel with a linux-image .deb or a directory of them (make kernels fills out/debs)")
	}
	if o.Out == "" {
		return nil, errors.New("no output directory given; pass -o DIR")
	}
	if c := o.Compression; c != "" && c != "zstd" && c != "gzip" {
		return nil, fmt.Errorf("initramfs compression %q is not supported; use zstd or gzip", c)
	}
	names := o.Formats
	if len(names) == 0 {
		names = b.Formats
	}
	formats, err := lookupFormats(names, b)
	if err != nil {
		return nil, err
	}
	if o.Version != "" {
		if err := upgrade.CheckVersion(o.Version); err != nil {
			return nil, fmt.Errorf("--version: %w", err)
		}
	}
	level := o.SquashfsLevel
	if level == 0 {
		level = DefaultSquashfsLevel
	}
	if level < 1 || level > 22 {
		return nil, fmt.Errorf("squashfs zstd level %d is out of range; use 1 to 22", level)
	}
	epoch := o.SourceDateEpoch
	if epoch == 0 {
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			epoch, err = strconv.ParseInt(s, 10, 64)
			if err != nil || epoch < 0 {
				return nil, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds; unset it or fix it", s)
			}
		}
	}
	cacheDir := o.CacheDir
	if cacheDir == "" {
		if cacheDir, err = defaultCacheDir(); err != nil {
			return nil, err
		}
	}
	return &settings{board: b, rawBoard: rawBoard, formats: formats, level: level, epoch: epoch, cacheDir: cacheDir}, nil
}
