package image

import (
	"debug/elf"
	"fmt"
	"path/filepath"
)

// elfMachines are the ELF machine types of the boards' architectures.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkK3s makes sure path is a Linux executable for arch before it goes
// into an image, and returns its name and digest for the manifest.
func checkK3s(path, arch string, d digests) (*FileInput, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("k3s %s: not an ELF executable (%w); pass the k3s binary for %s", path, err, arch)
	}
	m := f.Machine
	f.Close()
	if want, ok := elfMachines[arch]; !ok || m != want {
		return nil, fmt.Errorf("k3s %s is built for %v; the board needs %s", path, m, arch)
	}
	sum, err := d.sum(path)
	if err != nil {
		return nil, fmt.Errorf("k3s %s: %w", path, err)
	}
	return &FileInput{Name: filepath.Base(path), SHA256: sum}, nil
}
