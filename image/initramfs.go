package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/cairn-os/cairn/config/layout"
)

// initramfsCodec picks the initramfs compression: the one asked for, which
// the kernel must be able to unpack, or zstd, or gzip for a kernel without
// zstd support.
func initramfsCodec(asked string, k *Kernel) (string, error) {
	option := map[string]string{"zstd": "CONFIG_RD_ZSTD", "gzip": "CONFIG_RD_GZIP"}
	if asked != "" {
		if !k.ConfigEnabled(option[asked], false) {
			return "", fmt.Errorf("kernel %s cannot unpack a %s initramfs (%s is not set); pass another -compress", k.Release, asked, option[asked])
		}
		return asked, nil
	}
	for _, c := range []string{"zstd", "gzip"} {
		if k.ConfigEnabled(option[c], false) {
			return c, nil
		}
	}
	return "", fmt.Errorf("kernel %s can unpack neither a zstd nor a gzip initramfs (CONFIG_RD_ZSTD, CONFIG_RD_GZIP); use a kernel with one of them", k.Release)
}

// writeInitramfs writes the compressed stage-1 cpio, zero padding to a
// 4-byte boundary, then an uncompressed cpio holding /system.sqfs (already
// compressed; the kernel unpacks concatenated archives in turn).
func writeInitramfs(w io.WriteCloser, t tree, sqfs, comp string, mtime int64, cacheDir string) error {
	seg, err := compressedCPIO(t, comp, mtime, cacheDir)
	if err != nil {
		w.Close()
		return err
	}
	cw := &countWriter{w: w}
	f, err := os.Open(seg)
	if err != nil {
		w.Close()
		return err
	}
	_, err = io.Copy(cw, f)
	f.Close()
	if err != nil {
		w.Close()
		return err
	}
	if r := cw.n % 4; r != 0 {
		cw.Write(make([]byte, 4-r))
	}
	live := tree{}
	live.file(layout.SystemImage, 0o644, sqfs)
	if err := live.writeCPIO(cw, mtime); err != nil {
		w.Close()
		return err
	}
	if cw.err != nil {
		w.Close()
		return cw.err
	}
	return w.Close()
}

// compressedCPIO returns a file holding t as a compressed cpio, cached in
// cacheDir by the tree's digest and the codec's settings.
func compressedCPIO(t tree, comp string, mtime int64, cacheDir string) (string, error) {
	d, err := t.digest(digests{cacheDir})
	if err != nil {
		return "", err
	}
	settings := "zstd better concurrency=2"
	if comp == "gzip" {
		settings = "gzip best"
	}
	key := sha256.Sum256(fmt.Appendf(nil, "%s\n%d\n%s", d, mtime, settings))
	path := filepath.Join(cacheDir, "initramfs", hex.EncodeToString(key[:16])+".cpio."+comp)
	if cacheHit(path) {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	cachePrune(filepath.Dir(path))
	f, err := os.CreateTemp(filepath.Dir(path), ".seg-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	var zw io.WriteCloser
	switch comp {
	case "gzip":
		zw, _ = gzip.NewWriterLevel(f, gzip.BestCompression)
	default:
		zw, err = zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(2))
		if err != nil {
			f.Close()
			return "", err
		}
	}
	if err := t.writeCPIO(zw, mtime); err != nil {
		f.Close()
		return "", err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
	return n, err
}
