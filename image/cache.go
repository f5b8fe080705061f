package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/config/files"
)

// digests remembers files' sha256 by path, size, modification time and
// inode, so a warm rebuild does not hash its unchanged inputs again (the
// kernel package alone is 60-70 MB). The memo lives in the cache
// directory, one small file per key; with no cache directory every file is
// hashed.
type digests struct{ dir string }

func (d digests) sum(path string) (string, error) {
	memo, err := d.memo(path)
	if err != nil {
		return "", err
	}
	if memo != "" {
		if b, err := os.ReadFile(memo); err == nil && len(b) == 64 {
			return string(b), nil
		}
	}
	sum, _, err := files.SHA256(path, -1)
	if err != nil || memo == "" {
		return sum, err
	}
	if os.MkdirAll(filepath.Dir(memo), 0o755) == nil {
		if f, err := os.CreateTemp(filepath.Dir(memo), ".sum-"); err == nil {
			_, werr := f.WriteString(sum)
			if f.Close() == nil && werr == nil {
				os.Rename(f.Name(), memo)
			}
			os.Remove(f.Name())
		}
	}
	return sum, nil
}

// memo is the file remembering the sha256 of the file at path, "" when
// it is not remembered (no cache directory, not a regular file).
func (d digests) memo(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(path)
	if d.dir == "" || !st.Mode().IsRegular() || err != nil {
		return "", nil
	}
	var ino uint64
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = s.Ino
	}
	k := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d\x00%d", abs, st.Size(), st.ModTime().UnixNano(), ino))
	return filepath.Join(d.dir, "sums", hex.EncodeToString(k[:16])), nil
}

func defaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w; set XDG_CACHE_HOME", err)
	}
	return filepath.Join(d, "cairn"), nil
}

// cacheMaxAge is how long an unused system image or initramfs segment
// stays in the cache.
const cacheMaxAge = 24 * time.Hour

// cacheHit reports whether the cache entry path exists, marking it used.
func cacheHit(path string) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	now := time.Now()
	os.Chtimes(path, now, now)
	return true
}

// cachePrune removes the entries of dir unused for cacheMaxAge.
func cachePrune(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && time.Since(info.ModTime()) > cacheMaxAge {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
