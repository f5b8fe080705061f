package dceoverlay

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// A swap is a module built from a changed copy: when the package pkg is in
// the build, its module is copied with the file (a path in the module) passed
// through edit.
type swap struct {
	pkg, file string
	edit      func(file string, src []byte) ([]byte, error)
}

// copyModule copies the module in src to dst (replacing dst), with the file
// at rel passed through edit.
func copyModule(src, dst, rel string, edit func(string, []byte) ([]byte, error)) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	edited := false
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, r)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if filepath.ToSlash(r) == rel {
			if data, err = edit(path, data); err != nil {
				return err
			}
			edited = true
		}
		return os.WriteFile(out, data, 0o644)
	})
	if err == nil && !edited {
		err = fmt.Errorf("no file %s", rel)
	}
	if err != nil {
		return fmt.Errorf("copying the module in %s: %w", src, err)
	}
	return nil
}
