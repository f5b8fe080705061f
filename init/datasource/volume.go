package datasource

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// volume is a filesystem read in place: the label and its files.
type volume interface {
	Label() string
	ReadFile(path string) ([]byte, error)
}

// openVolume recognises a vfat or iso9660 filesystem on r.
func openVolume(r io.ReaderAt) (volume, string, error) {
	if v, err := openISO(r); err == nil {
		return v, "iso9660", nil
	}
	if v, err := openFAT(r); err == nil {
		return v, "vfat", nil
	}
	return nil, "", errors.New("neither vfat nor iso9660")
}

// labelledVolume is a block device whose filesystem has a label we look for.
type labelledVolume struct {
	dev    string // "/dev/vdb", as a person would name it
	fstype string
	vol    volume
	file   *os.File
}

// findVolumes opens every block device under root whose vfat or iso9660
// label equals one of labels (case-insensitively), in device-name order.
// Callers close the returned files.
func findVolumes(root string, log *slog.Logger, labels ...string) []labelledVolume {
	names, err := os.ReadDir(filepath.Join(root, "sys/class/block"))
	if err != nil {
		log.Debug("datasource: no block devices", "err", err)
		return nil
	}
	var out []labelledVolume
	sort.Slice(names, func(i, j int) bool { return names[i].Name() < names[j].Name() })
	for _, n := range names {
		name := n.Name()
		if size, err := os.ReadFile(filepath.Join(root, "sys/class/block", name, "size")); err == nil {
			if s, _ := strconv.ParseInt(strings.TrimSpace(string(size)), 10, 64); s == 0 {
				continue // empty drive, unattached loop device, CD-ROM without a disc
			}
		}
		f, err := os.Open(filepath.Join(root, "dev", name))
		if err != nil {
			log.Debug("datasource: cannot open block device", "dev", name, "err", err)
			continue
		}
		v, fstype, err := openVolume(f)
		if err != nil {
			f.Close()
			continue
		}
		match := false
		for _, l := range labels {
			match = match || strings.EqualFold(v.Label(), l)
		}
		if !match {
			f.Close()
			continue
		}
		out = append(out, labelledVolume{dev: "/dev/" + name, fstype: fstype, vol: v, file: f})
	}
	return out
}
