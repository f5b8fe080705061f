package qemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Seed is the content of a NoCloud seed, as cloud-init's NoCloud datasource
// defines it.
type Seed struct {
	UserData      []byte // "#cloud-config ..."
	MetaData      []byte // "instance-id: ...\nlocal-hostname: ...\n"; a default instance-id when nil
	NetworkConfig []byte // optional network config version 2
}

// files writes the seed's files into a new temporary directory, which the
// caller removes; network is empty when the seed has no network config.
func (s Seed) files() (dir, user, meta, network string, err error) {
	dir, err = os.MkdirTemp("", "cairn-seed-")
	if err != nil {
		return "", "", "", "", err
	}
	user = filepath.Join(dir, "user-data")
	meta = filepath.Join(dir, "meta-data")
	metaData := s.MetaData
	if metaData == nil {
		metaData = []byte("instance-id: cairn-test\n")
	}
	if err = os.WriteFile(user, s.UserData, 0o600); err == nil {
		err = os.WriteFile(meta, metaData, 0o600)
	}
	if err == nil && s.NetworkConfig != nil {
		network = filepath.Join(dir, "network-config")
		err = os.WriteFile(network, s.NetworkConfig, 0o600)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", "", "", "", err
	}
	return dir, user, meta, network, nil
}

// MakeSeedISO writes the seed as an iso9660 image labelled "cidata" to path,
// with Debian's cloud-localds (package cloud-image-utils), the way users make
// seeds for cloud images.
func MakeSeedISO(ctx context.Context, path string, s Seed) error {
	dir, user, meta, network, err := s.files()
	if err != nil {
		return fmt.Errorf("seed %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	argv := []string{"cloud-localds"}
	if network != "" {
		argv = append(argv, "--network-config="+network)
	}
	argv = append(argv, path, user, meta)
	if err := run(ctx, argv...); err != nil {
		return fmt.Errorf("seed %s (cloud-localds is in Debian's cloud-image-utils; `make deps`): %w", path, err)
	}
	return nil
}

// MakeSeedVFAT writes the seed as a FAT volume labelled "cidata" to path, with
// mkfs.vfat (dosfstools) and mcopy (mtools), as a user would prepare a USB stick.
func MakeSeedVFAT(ctx context.Context, path string, s Seed) error {
	dir, user, meta, network, err := s.files()
	if err != nil {
		return fmt.Errorf("seed %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	os.Remove(path)
	// 2 MiB: mkfs.vfat picks FAT12, which every kernel reads.
	steps := [][]string{
		{"mkfs.vfat", "-n", "cidata", "-C", path, "2048"},
		{"mcopy", "-oi", path, user, meta, "::/"},
	}
	if network != "" {
		steps = append(steps, []string{"mcopy", "-oi", path, network, "::/"})
	}
	for _, st := range steps {
		if err := run(ctx, st...); err != nil {
			return fmt.Errorf("seed %s (mkfs.vfat is in dosfstools, mcopy in mtools; `make deps`): %w", path, err)
		}
	}
	return nil
}
