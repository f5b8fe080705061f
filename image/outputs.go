package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/config/files"
)

// prepareOut creates the output directory and checks it is writable.
func prepareOut(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("output directory %s: %w; pass -o a writable directory", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".cairn-write-test-")
	if err != nil {
		return "", fmt.Errorf("output directory %s: %w; pass -o a writable directory", dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	return dir, nil
}

// unwrapPath drops the path from an *fs.PathError: the message names it.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func describe(name, path string) (Artifact, error) {
	sum, size, err := files.SHA256(path, -1)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Name: name, Size: size, SHA256: sum}, nil
}

func copyTo(w io.WriteCloser, src string) error {
	f, err := os.Open(src)
	if err != nil {
		w.Close()
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func writeTo(w io.WriteCloser, data []byte) error {
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// outFiles writes artifacts under temporary names in the output directory
// and renames them all at the end; abort removes what was not committed.
type outFiles struct {
	dir     string
	tmp     map[string]string
	written map[string]*hashingFile
	order   []string
}

func newOutFiles(dir string) *outFiles {
	return &outFiles{dir: dir, tmp: map[string]string{}, written: map[string]*hashingFile{}}
}

func (o *outFiles) create(name string) (io.WriteCloser, error) {
	f, err := os.CreateTemp(o.dir, tmpPattern(name))
	if err != nil {
		return nil, fmt.Errorf("output directory %s: %w; pass -o a writable directory", o.dir, unwrapPath(err))
	}
	o.tmp[name] = f.Name()
	o.order = append(o.order, name)
	hf := &hashingFile{f: f, h: sha256.New()}
	o.written[name] = hf
	return hf, nil
}

// reserve returns the path of a new empty file for the artifact name, for
// formats that write with tools of their own; it is hashed at the end.
func (o *outFiles) reserve(name string) (string, error) {
	f, err := os.CreateTemp(o.dir, tmpPattern(name))
	if err != nil {
		return "", fmt.Errorf("output directory %s: %w; pass -o a writable directory", o.dir, unwrapPath(err))
	}
	f.Close()
	o.tmp[name] = f.Name()
	o.order = append(o.order, name)
	return f.Name(), nil
}

// copy writes the artifact name with the contents of the file src.
func (o *outFiles) copy(name, src string) error {
	w, err := o.create(name)
	if err != nil {
		return err
	}
	return copyTo(w, src)
}

// write writes the artifact name with data.
func (o *outFiles) write(name string, data []byte) error {
	w, err := o.create(name)
	if err != nil {
		return err
	}
	return writeTo(w, data)
}

// artifacts describes every file written with create or reserve, in order.
func (o *outFiles) artifacts() ([]Artifact, error) {
	var out []Artifact
	for _, name := range o.order {
		hf, ok := o.written[name]
		if !ok {
			a, err := describe(name, o.tmp[name])
			if err != nil {
				return nil, err
			}
			out = append(out, a)
			continue
		}
		out = append(out, Artifact{Name: name, Size: hf.n, SHA256: hex.EncodeToString(hf.h.Sum(nil))})
	}
	return out, nil
}

// hashingFile is a file that hashes and counts what is written to it.
type hashingFile struct {
	f *os.File
	h hash.Hash
	n int64
}

func (w *hashingFile) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	w.h.Write(b[:n])
	w.n += int64(n)
	return n, err
}

func (w *hashingFile) Close() error { return w.f.Close() }

// tmpPattern names an artifact's temporary file in the output directory;
// artifacts in subdirectories (pxe/vmlinuz) are written beside the others
// and moved into theirs by commit.
func tmpPattern(name string) string {
	return "." + strings.ReplaceAll(name, "/", "_") + ".tmp-"
}

func (o *outFiles) commit() error {
	for _, name := range o.order {
		if err := os.Chmod(o.tmp[name], 0o644); err != nil {
			return fmt.Errorf("output %s: %w", name, err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(o.dir, name)), 0o755); err != nil {
			return fmt.Errorf("output %s: %w", name, err)
		}
		if err := os.Rename(o.tmp[name], filepath.Join(o.dir, name)); err != nil {
			return fmt.Errorf("output %s: %w", name, err)
		}
		delete(o.tmp, name)
	}
	return nil
}

func (o *outFiles) abort() {
	for _, p := range o.tmp {
		os.Remove(p)
	}
}
