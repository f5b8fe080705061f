package dceoverlay

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// An edit changes one file of a module's copy.
type edit func(file string, src []byte) ([]byte, error)

// A swap is a module built from a changed copy: when the package pkg is in
// the build, its module is copied with each file of edits (a path in the
// module) passed through its edit.
type swap struct {
	pkg   string
	edits map[string]edit
}

// copyModule copies the module in src to dst (replacing dst), with the
// files named in edits passed through their edit; each must be there.
func copyModule(src, dst string, edits map[string]edit) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	edited := map[string]bool{}
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
		if e, ok := edits[filepath.ToSlash(r)]; ok {
			if data, err = e(path, data); err != nil {
				return err
			}
			edited[filepath.ToSlash(r)] = true
		}
		return os.WriteFile(out, data, 0o644)
	})
	for rel := range edits {
		if err == nil && !edited[rel] {
			err = fmt.Errorf("no file %s", rel)
		}
	}
	if err != nil {
		return fmt.Errorf("copying the module in %s: %w", src, err)
	}
	return nil
}
