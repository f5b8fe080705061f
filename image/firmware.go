package image

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/image/deb"
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
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	found, _ := filepath.Glob(filepath.Join(dir, fw.Package+"_*.deb"))
	if len(found) == 0 {
		return nil, nil, fmt.Errorf("firmware: no %s package in %s; fetch it with 'make kernels' (apt-get download %s, from Debian's non-free-firmware component)", fw.Package, dir, fw.Package)
	}
	sort.Slice(found, func(i, j int) bool { return naturalLess(found[i], found[j]) })
	pkg := found[len(found)-1]
	p, err := deb.Open(pkg)
	if err != nil {
		return nil, nil, fmt.Errorf("firmware package %s: %w", pkg, err)
	}
	defer p.Close()
	data := map[string][]byte{}
	want := map[string]bool{}
	for _, f := range fw.Files {
		want[path.Join(fw.Dir, f)] = true
	}
	err = p.Walk(func(h *tar.Header, r io.Reader) error {
		name := strings.TrimPrefix(h.Name, "./")
		if !want[name] || h.Typeflag != tar.TypeReg {
			return nil
		}
		if h.Size > maxFirmwareFile {
			return fmt.Errorf("%s is %d bytes, more than firmware can be", name, h.Size)
		}
		b, err := io.ReadAll(io.LimitReader(r, maxFirmwareFile))
		if err != nil {
			return err
		}
		data[name] = b
		if len(data) == len(want) {
			return deb.ErrStop
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var files []fatFile
	for _, f := range fw.Files {
		b, ok := data[path.Join(fw.Dir, f)]
		if !ok {
			return nil, nil, fmt.Errorf("firmware package %s has no %s; fix the board's firmware.files (or firmware.dir)", pkg, path.Join(fw.Dir, f))
		}
		files = append(files, fatFile{path: "/" + f, data: b})
	}
	sum, err := fileSHA256(pkg)
	if err != nil {
		return nil, nil, err
	}
	return files, &FileInput{Name: filepath.Base(pkg), SHA256: sum}, nil
}
