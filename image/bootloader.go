package image

import (
	"fmt"

	"github.com/cairn-os/cairn/boards"
)

// maxBootloader bounds the loader read from a package: systemd-boot is
// about 140 KiB.
const maxBootloader = 16 << 20

// readBootloader returns the board's UEFI boot loader from its Debian
// package, found in dir (the directory the kernel package is in), and the
// package's name and digest for the manifest.
func readBootloader(dir string, b *boards.Board) ([]byte, *FileInput, error) {
	bl := b.Bootloader
	path, dir := newestDeb(dir, bl.Package+"_*_"+b.Arch+".deb")
	if path == "" {
		return nil, nil, fmt.Errorf("boot loader: no %s package for %s in %s; fetch it with 'make kernels' (apt-get download %s:%s)", bl.Package, b.Arch, dir, bl.Package, b.Arch)
	}
	data, in, err := readDeb(path, "boot loader", []string{bl.File}, maxBootloader)
	if err != nil {
		return nil, nil, err
	}
	if data[bl.File] == nil {
		return nil, nil, fmt.Errorf("boot loader package %s has no %s; fix the board's bootloader.file", path, bl.File)
	}
	return data[bl.File], in, nil
}
