package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
)

// node is one entry of a file tree being assembled. Owners are always 0:0
// and times the build's fixed time.
type node struct {
	mode uint32 // cpio.Type* | permission bits
	src  string // regular file: read from here, or
	data []byte // these bytes
	link string // symlink target
}

// tree is a root filesystem being assembled, by path without a leading "/".
type tree map[string]*node

func (t tree) mkdirAll(p string) {
	p = path.Clean(p)
	if p == "." || p == "/" || p == "" {
		return
	}
	if n, ok := t[p]; ok && n.mode&0o170000 == cpio.TypeDir {
		return
	}
	t.mkdirAll(path.Dir(p))
	t[p] = &node{mode: cpio.TypeDir | 0o755}
}

func (t tree) add(p string, n *node) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	t.mkdirAll(path.Dir(p))
	t[p] = n
}

func (t tree) file(p string, perm uint32, src string) {
	t.add(p, &node{mode: cpio.TypeReg | perm, src: src})
}

func (t tree) bytes(p string, perm uint32, data []byte) {
	t.add(p, &node{mode: cpio.TypeReg | perm, data: data})
}

func (t tree) symlink(p, target string) {
	t.add(p, &node{mode: cpio.TypeSymlink | 0o777, link: target})
}

// addDir copies the tree on disk at root into t under prefix. Permissions
// are normalized so a checkout's umask does not change the image: 0755 for
// directories and executables, 0644 for other files, and 0700/0600 for what
// is not readable by others on disk.
func (t tree) addDir(root, prefix string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		dst := path.Join(prefix, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		perm := normPerm(info.Mode())
		switch {
		case d.IsDir():
			t.mkdirAll(dst)
			t[strings.TrimPrefix(path.Clean("/"+dst), "/")].mode = cpio.TypeDir | perm
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			t.symlink(dst, target)
		case info.Mode().IsRegular():
			t.file(dst, perm, p)
		default:
			return fmt.Errorf("%s: only files, directories and symlinks can go into an image", p)
		}
		return nil
	})
}

func normPerm(m fs.FileMode) uint32 {
	exec := m&0o111 != 0 || m.IsDir()
	private := m&0o004 == 0
	switch {
	case exec && private:
		return 0o700
	case exec:
		return 0o755
	case private:
		return 0o600
	}
	return 0o644
}

// paths returns the tree's paths sorted, parents before children.
func (t tree) paths() []string {
	ps := make([]string, 0, len(t))
	for p := range t {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

func (n *node) isFile() bool { return n.mode&0o170000 == cpio.TypeReg }

func (n *node) open() (io.ReadCloser, int64, error) {
	if n.src == "" {
		return io.NopCloser(strings.NewReader(string(n.data))), int64(len(n.data)), nil
	}
	f, err := os.Open(n.src)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// writeCPIO writes t as a newc archive with every time set to mtime and
// every owner 0:0. It holds no device nodes: the kernel unpacks its own
// built-in archive, with /dev/console, before this one.
func (t tree) writeCPIO(w io.Writer, mtime int64) error {
	cw := cpio.NewWriter(w)
	for _, p := range t.paths() {
		n := t[p]
		h := &cpio.Header{Name: p, Mode: cpio.FileMode(n.mode), ModTime: time.Unix(mtime, 0)}
		switch n.mode & cpio.ModeType {
		case cpio.TypeDir:
			if err := cw.WriteHeader(h); err != nil {
				return err
			}
		case cpio.TypeSymlink:
			// newc keeps a symlink's target as its contents.
			h.Size = int64(len(n.link))
			if err := cw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := io.WriteString(cw, n.link); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		case cpio.TypeReg:
			r, size, err := n.open()
			if err != nil {
				return err
			}
			h.Size = size
			if err := cw.WriteHeader(h); err != nil {
				r.Close()
				return err
			}
			_, err = io.CopyN(cw, r, size)
			r.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		default:
			return fmt.Errorf("%s: mode %o cannot go into an initramfs; only files, directories and symlinks can", p, n.mode)
		}
	}
	return cw.Close()
}

// digest is a hash of the tree's paths, modes, targets and contents: two
// trees with the same digest give the same filesystem image.
func (t tree) digest(d digests) (string, error) {
	h := sha256.New()
	for _, p := range t.paths() {
		n := t[p]
		fmt.Fprintf(h, "%q %o %q", p, n.mode, n.link)
		if n.isFile() {
			var sum string
			if n.src != "" {
				var err error
				if sum, err = d.sum(n.src); err != nil {
					return "", fmt.Errorf("%s: %w", p, err)
				}
			} else {
				b := sha256.Sum256(n.data)
				sum = hex.EncodeToString(b[:])
			}
			fmt.Fprintf(h, " %s", sum)
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// stage materializes t in the empty directory dir for a tool that reads a
// directory (mksquashfs). Files are hard-linked from their sources when the
// source has the wanted permissions and lives on the same filesystem, and
// copied otherwise.
func (t tree) stage(dir string) error {
	for _, p := range t.paths() {
		n := t[p]
		dst := filepath.Join(dir, filepath.FromSlash(p))
		perm := fs.FileMode(n.mode & 0o777)
		if n.mode&0o1000 != 0 {
			perm |= fs.ModeSticky
		}
		switch n.mode & 0o170000 {
		case cpio.TypeDir:
			if err := os.Mkdir(dst, perm); err != nil {
				return err
			}
			if err := os.Chmod(dst, perm); err != nil {
				return err
			}
		case cpio.TypeSymlink:
			if err := os.Symlink(n.link, dst); err != nil {
				return err
			}
		case cpio.TypeReg:
			if n.src != "" {
				if st, err := os.Stat(n.src); err == nil && st.Mode().Perm() == perm {
					if os.Link(n.src, dst) == nil {
						continue
					}
				}
			}
			if err := copyNode(n, dst, perm); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		default:
			return fmt.Errorf("%s: device nodes cannot be staged", p)
		}
	}
	return nil
}

func copyNode(n *node, dst string, perm fs.FileMode) error {
	r, _, err := n.open()
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
