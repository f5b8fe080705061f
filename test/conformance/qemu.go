package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// testArchives are the image archives the cluster gets: every one the
// images step wrote, or, for a QEMU run of a focus set, the set's own
// (each VM keeps its images in RAM).
func testArchives(o *options) ([]string, error) {
	dir := filepath.Join(o.out, "images")
	if o.vms() && o.set != nil {
		var paths []string
		for _, f := range o.set.Images {
			p := filepath.Join(dir, "conformance-"+f+".tar")
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("-focus-set %s needs the test image %s: %s is missing (run with -steps images first)", o.set.Name, f, p)
			}
			paths = append(paths, p)
		}
		return paths, nil
	}
	paths, err := filepath.Glob(filepath.Join(dir, "conformance-*.tar"))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("no test images in %s: run with -steps images first", dir)
	}
	return paths, nil
}

// qemuImage builds the VMs' system image with the test images in it and
// returns its directory (for cairn cluster up --image). A VM cannot be
// given --image-archive; its init imports every archive under
// /usr/share/cairn/images of its system image at boot, where the node
// components keep theirs (pause, CoreDNS, ...). So the image is built from
// a components tree of links to OUT/components/linux-ARCH plus the test
// archives there, into OUT/qemu/image (out/BOARD, cluster up's own build,
// stays as it was).
func qemuImage(ctx context.Context, o *options, archives []string) (string, error) {
	arch := runtime.GOARCH
	src, err := filepath.EvalSymlinks(filepath.Join(o.components, "linux-"+arch))
	if err != nil {
		return "", fmt.Errorf("node components: %w (make components-%s)", err, arch)
	}
	comp := filepath.Join(o.out, "qemu", "components")
	if err := os.RemoveAll(comp); err != nil {
		return "", err
	}
	tree := filepath.Join(comp, "linux-"+arch)
	if err := linkTree(src, tree); err != nil {
		return "", fmt.Errorf("the VMs' components tree: %w", err)
	}
	images := filepath.Join(tree, "usr/share/cairn/images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		return "", err
	}
	var size int64
	for _, a := range archives {
		fi, err := os.Stat(a)
		if err != nil {
			return "", err
		}
		size += fi.Size()
		if err := linkFile(a, filepath.Join(images, filepath.Base(a)), fi.Mode().Perm()); err != nil {
			return "", err
		}
	}
	out := filepath.Join(o.out, "qemu", "image")
	args := []string{"build", "--board", qemuBoards[arch], "--kernel", o.kernel, "--components", comp, "--format", "kernel", "-o", out}
	logf("the VMs' system image, with %d test images (%d MiB): %s %s", len(archives), size>>20, o.cairn, strings.Join(args, " "))
	start := time.Now()
	cmd := exec.CommandContext(ctx, o.cairn, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("cairn build (the VMs' system image): %w", err)
	}
	logf("the VMs' system image: %s (%s)", out, elapsed(start))
	return out, nil
}

// linkTree makes dst a copy of the tree src: directories with their
// modes, symbolic links as they are, regular files hard-linked (copied
// across file systems). Anything else is refused.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			return os.Chmod(target, fi.Mode().Perm())
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case fi.Mode().IsRegular():
			return linkFile(p, target, fi.Mode().Perm())
		default:
			return fmt.Errorf("%s: a %s file; the components tree holds files, directories and links only", p, fi.Mode().Type())
		}
	})
}

// linkFile hard-links src at dst, or copies it (with mode perm) where a
// link cannot be made.
func linkFile(src, dst string, perm fs.FileMode) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
