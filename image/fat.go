package image

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"sync"

	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
)

// fatFile is a file of a FAT file system being made: data, or the contents
// of the file src.
type fatFile struct {
	path string
	data []byte
	src  string
	// slot marks a file of a slot (kernel, initramfs, its entry), which
	// the other slot will have its own copy of.
	slot bool
}

// fatClock serializes makeFAT's use of SOURCE_DATE_EPOCH.
var fatClock sync.Mutex

// makeFAT makes a FAT32 file system on partition part of d (0: the whole
// of d) holding files, every time stamp at epoch.
func makeFAT(d *disk.Disk, part int, label string, epoch int64, files []fatFile) error {
	// go-diskfs stamps FAT directory entries with the clock unless
	// SOURCE_DATE_EPOCH is set in the environment; it has no option.
	fatClock.Lock()
	defer fatClock.Unlock()
	old, had := os.LookupEnv("SOURCE_DATE_EPOCH")
	os.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(epoch, 10))
	defer func() {
		if had {
			os.Setenv("SOURCE_DATE_EPOCH", old)
		} else {
			os.Unsetenv("SOURCE_DATE_EPOCH")
		}
	}()
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: part, FSType: filesystem.TypeFat32, VolumeLabel: label, Reproducible: true})
	if err != nil {
		return err
	}
	for _, fl := range files {
		if err := writeFATFile(fs, fl); err != nil {
			return fmt.Errorf("%s: %w", fl.path, err)
		}
	}
	return nil
}

func writeFATFile(fs filesystem.FileSystem, fl fatFile) error {
	if err := fs.Mkdir(path.Dir(fl.path)); err != nil {
		return err
	}
	w, err := fs.OpenFile(fl.path, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return err
	}
	var r io.Reader = bytes.NewReader(fl.data)
	if fl.src != "" {
		src, err := os.Open(fl.src)
		if err != nil {
			w.Close()
			return err
		}
		defer src.Close()
		r = src
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// fatSize is the size of a FAT32 file system for payload bytes of files:
// a quarter more and 4 MiB, at least the 40 MiB FAT32 needs for its 65525
// clusters of 512 bytes.
func fatSize(payload int64) int64 {
	return max(roundUp(payload*5/4+4*mib, mib), 40*mib)
}
