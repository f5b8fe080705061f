package image

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/image/deb"
)

// maxBootloader bounds the loader read from a package: systemd-boot is
// about 140 KiB.
const maxBootloader = 16 << 20

// readBootloader returns the board's UEFI boot loader from its Debian
// package, found in dir (the directory the kernel package is in), and the
// package's name and digest for the manifest.
func readBootloader(dir string, b *boards.Board) ([]byte, *FileInput, error) {
	bl := b.Bootloader
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	found, _ := filepath.Glob(filepath.Join(dir, bl.Package+"_*_"+b.Arch+".deb"))
	if len(found) == 0 {
		return nil, nil, fmt.Errorf("boot loader: no %s package for %s in %s; fetch it with 'make kernels' (apt-get download %s:%s)", bl.Package, b.Arch, dir, bl.Package, b.Arch)
	}
	sort.Slice(found, func(i, j int) bool { return naturalLess(found[i], found[j]) })
	path := found[len(found)-1]
	p, err := deb.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("boot loader package %s: %w", path, err)
	}
	defer p.Close()
	var data []byte
	err = p.Walk(func(h *tar.Header, r io.Reader) error {
		if strings.TrimPrefix(h.Name, "./") != bl.File || h.Typeflag != tar.TypeReg {
			return nil
		}
		if h.Size > maxBootloader {
			return fmt.Errorf("%s is %d bytes, more than a boot loader can be", bl.File, h.Size)
		}
		data, err = io.ReadAll(io.LimitReader(r, maxBootloader))
		if err != nil {
			return err
		}
		return deb.ErrStop
	})
	if err != nil {
		return nil, nil, err
	}
	if data == nil {
		return nil, nil, fmt.Errorf("boot loader package %s has no %s; fix the board's bootloader.file", path, bl.File)
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return nil, nil, err
	}
	return data, &FileInput{Name: filepath.Base(path), SHA256: sum}, nil
}
