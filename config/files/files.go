// Package files reads files with bounds: a file's contents up to a
// limit, and a file's size and sha256. Every file cairn reads that
// someone else wrote (a token, a state record, a bundle) goes through
// here, so a huge or endless one is an error, never an out-of-memory.
// It also writes the secrets cairn hands to files (WriteSecret).
package files

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Read reads the file at path, refusing one larger than limit bytes with
// an error naming it.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// SHA256 is the hex sha256 of the file at path and its size, reading at
// most limit+1 bytes (limit < 0: no bound, for the builder's own files).
func SHA256(path string, limit int64) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	var r io.Reader = f
	if limit >= 0 {
		r = io.LimitReader(f, limit+1)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// WriteAtomic writes data to target through a temporary file beside it
// that has mode and owner (-1 keeps the writer's) before any byte is
// written, syncs it and renames it into place: readers see the old file or
// the whole new one, and nobody else ever sees a secret. The directory
// must exist.
func WriteAtomic(target string, data []byte, mode os.FileMode, uid, gid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".cairn-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	err = tmp.Chmod(mode)
	if err == nil && (uid >= 0 || gid >= 0) {
		err = tmp.Chown(uid, gid)
	}
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), target)
}

// WriteSecret writes data (a token, a kubeconfig, a password) to the file
// at path, mode 0600, with WriteAtomic: the secret is never in a file
// others may read, not for a moment; a file that was at path with another
// mode (0644), or held open by someone, is replaced, not rewritten.
func WriteSecret(path string, data []byte) error {
	if err := WriteAtomic(path, data, 0o600, -1, -1); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
