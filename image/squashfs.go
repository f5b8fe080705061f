package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/config/brief"
)

// DefaultSquashfsLevel is the zstd level of the system image. Level 6 costs
// a sixteenth of the CPU time of mksquashfs's default (15) for an image about
// 7% larger; docs/build.md has the measurements.
const DefaultSquashfsLevel = 6

// squashfsCodec picks the system image's compressor: zstd, else xz, else
// gzip, whichever the kernel's squashfs reads first.
func squashfsCodec(k *Kernel) (string, error) {
	if !k.ConfigEnabled("CONFIG_SQUASHFS", true) {
		return "", fmt.Errorf("kernel %s has no squashfs (CONFIG_SQUASHFS); use a kernel with it", k.Release)
	}
	for _, c := range []struct{ codec, option string }{
		{"zstd", "CONFIG_SQUASHFS_ZSTD"}, {"xz", "CONFIG_SQUASHFS_XZ"}, {"gzip", "CONFIG_SQUASHFS_ZLIB"},
	} {
		if k.ConfigEnabled(c.option, false) {
			return c.codec, nil
		}
	}
	return "", fmt.Errorf("kernel %s's squashfs reads neither zstd, xz nor gzip; use a kernel with CONFIG_SQUASHFS_ZSTD", k.Release)
}

// makeSquashfs writes t as a squashfs compressed with codec (zstd at level,
// xz or gzip) to dst with every time set to mtime, owners 0:0 and no xattrs. The result is cached under cacheDir by
// the tree's digest: an unchanged tree is not compressed again.
func makeSquashfs(ctx context.Context, t tree, dst string, mtime int64, codec string, level int, cacheDir string, prog *progress) error {
	tool, err := exec.LookPath("mksquashfs")
	if err != nil {
		return fmt.Errorf("mksquashfs not found; install squashfs-tools (make deps)")
	}
	ver, _ := exec.Command(tool, "-version").Output()
	d, err := t.digest(digests{cacheDir})
	if err != nil {
		return fmt.Errorf("system image: %w", err)
	}
	key := sha256.Sum256(fmt.Appendf(nil, "%s\n%d\n%s %d\n%s", d, mtime, codec, level, brief.FirstLine(ver, 0)))
	cached := filepath.Join(cacheDir, "squashfs", hex.EncodeToString(key[:16])+".sqfs")
	if cacheHit(cached) && copyFile(cached, dst) == nil {
		return nil
	}
	cachePrune(filepath.Dir(cached))

	stage, err := os.MkdirTemp(cacheDir, ".stage-")
	if err != nil {
		return fmt.Errorf("system image: staging directory: %w", err)
	}
	defer os.RemoveAll(stage)
	root := filepath.Join(stage, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	if err := t.stage(root); err != nil {
		return fmt.Errorf("system image: staging: %w", err)
	}
	tmp := filepath.Join(stage, "system.sqfs")
	e := strconv.FormatInt(mtime, 10)
	args := []string{root, tmp, "-noappend", "-comp", codec}
	if codec == "zstd" {
		args = append(args, "-Xcompression-level", strconv.Itoa(level))
	}
	cmd := exec.CommandContext(ctx, tool, append(args,
		"-reproducible", "-mkfs-time", e, "-all-time", e, "-all-root", "-no-xattrs",
		"-no-progress", "-quiet")...)
	// mksquashfs refuses SOURCE_DATE_EPOCH together with -mkfs-time.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	prog.start("compressing the system image (squashfs, " + codec + ")")
	err = cmd.Run()
	prog.done()
	if err != nil {
		return fmt.Errorf("mksquashfs: %v: %s", err, strings.TrimSpace(out.String()))
	}
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err == nil {
		if os.Rename(tmp, cached) == nil {
			tmp = cached
		}
	}
	return copyFile(tmp, dst)
}

// copyFile copies src to dst, hard-linking when it can.
func copyFile(src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return err
	}
	os.Remove(dst)
	if os.Link(src, dst) == nil {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
