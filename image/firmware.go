package image

import (
	"fmt"
	"path"

	"github.com/cairn-os/cairn/boards"
)

// maxFirmwareFile bounds one firmware file read from a package: the Pi's
// start*.elf are 1-5 MiB.
const maxFirmwareFile = 64 << 20

// readFirmware returns the board's firmware files (board.firmware.files)
// from its Debian package, found in dir (the directory of the kernel
// package; fetched by 'make kernels'), in the board's order, and the
// package's name and digest for the manifest.
func readFirmware(dir string, b *boards.Board) ([]fatFile, *FileInput, error) {
	fw := b.Firmware
	pkg, dir := newestDeb(dir, fw.Package+"_*.deb")
	if pkg == "" {
		return nil, nil, fmt.Errorf("firmware: no %s package in %s; fetch it with 'make kernels' (apt-get download %s, from Debian's non-free-firmware component)", fw.Package, dir, fw.Package)
	}
	var names []string
	for _, f := range fw.Files {
		names = append(names, path.Join(fw.Dir, f))
	}
	data, in, err := readDeb(pkg, "firmware", names, maxFirmwareFile)
	if err != nil {
		return nil, nil, err
	}
	var out []fatFile
	for i, f := range fw.Files {
		b, ok := data[names[i]]
		if !ok {
			return nil, nil, fmt.Errorf("firmware package %s has no %s; fix the board's firmware.files (or firmware.dir)", pkg, names[i])
		}
		out = append(out, fatFile{path: "/" + f, data: b})
	}
	return out, in, nil
}
