package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	report "github.com/cairn-os/cairn/image/progress"
)

// FlashOptions say what cairn flash writes where.
type FlashOptions struct {
	// Image is a raw disk image, or one compressed with zstd (.zst) or xz
	// (.xz).
	Image string
	// Device is the block device to write (/dev/sdb, /dev/mmcblk0).
	Device string
	// Bmap is the image's block map; empty means IMAGE.bmap beside the
	// image, its .zst or .xz dropped, when that exists. With a map only the
	// blocks it lists are written and verified.
	Bmap string
	// Progress reports the writing and the verification.
	Progress *report.Reporter
}

// FlashResult says what Flash did.
type FlashResult struct {
	// Written is the bytes written; Skipped the bytes the bmap left out.
	Written, Skipped int64
	// Bmap is the block map used, or "".
	Bmap string
}

// flashRange is a run of bytes to write and verify, with the sha256 the
// bmap gives it ("" without a bmap).
type flashRange struct {
	start, end int64
	sum        string
}

// Flash writes o.Image to o.Device, skipping what the bmap leaves out,
// then reads back what it wrote and compares. It refuses a device that is
// not a block device, or that is mounted or in use as swap (with any of its
// partitions), which covers the one holding the running system.
func Flash(ctx context.Context, o FlashOptions) (*FlashResult, error) {
	if err := FlashTarget(o.Device); err != nil {
		return nil, err
	}
	res := &FlashResult{Bmap: o.Bmap}
	if res.Bmap == "" {
		guess := strings.TrimSuffix(strings.TrimSuffix(o.Image, ".zst"), ".xz") + ".bmap"
		if _, err := os.Stat(guess); err == nil {
			res.Bmap = guess
		}
	}
	var ranges []flashRange
	size := int64(-1)
	if res.Bmap != "" {
		data, err := os.ReadFile(res.Bmap)
		if err != nil {
			return nil, fmt.Errorf("bmap: %w", err)
		}
		if size, ranges, err = parseBmap(data); err != nil {
			return nil, fmt.Errorf("bmap %s: %w", res.Bmap, err)
		}
	}
	img, err := openImage(ctx, o.Image)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	if size < 0 {
		if size, err = imageSize(o.Image); err != nil {
			return nil, err
		}
		ranges = []flashRange{{start: 0, end: size}}
	}
	// O_EXCL on a block device fails while the kernel holds it (mounted,
	// in a RAID or device-mapper table).
	dev, err := os.OpenFile(o.Device, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w; is it in use?", o.Device, unwrapPath(err))
	}
	defer dev.Close()
	if devSize, err := dev.Seek(0, io.SeekEnd); err == nil && devSize < size {
		return nil, fmt.Errorf("%s holds %s, the image needs %s", o.Device, HumanSize(devSize), HumanSize(size))
	}

	task := o.Progress.Start("writing "+o.Image+" to "+o.Device, size)
	sums := make([]string, len(ranges))
	var pos int64
	buf := make([]byte, 1<<20)
	for i, r := range ranges {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := io.CopyN(io.Discard, img, r.start-pos); err != nil {
			return nil, fmt.Errorf("reading %s: %w", o.Image, err)
		}
		res.Skipped += r.start - pos
		task.Add(r.start - pos)
		h := sha256.New()
		w := io.MultiWriter(io.NewOffsetWriter(dev, r.start), h, task)
		n, err := io.CopyBuffer(w, io.LimitReader(img, r.end-r.start), buf)
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", o.Device, err)
		}
		if n != r.end-r.start {
			return nil, fmt.Errorf("%s ends at %d bytes, before the %d its map gives", o.Image, r.start+n, r.end)
		}
		sums[i] = hex.EncodeToString(h.Sum(nil))
		if r.sum != "" && r.sum != sums[i] {
			return nil, fmt.Errorf("%s: bytes %d-%d do not match the bmap's checksum; the image or its map is damaged", o.Image, r.start, r.end)
		}
		res.Written += n
		pos = r.end
	}
	res.Skipped += size - pos
	task.Add(size - pos)
	task.Done()
	if err := dev.Sync(); err != nil {
		return nil, fmt.Errorf("syncing %s: %w", o.Device, err)
	}

	check := o.Progress.Start("verifying "+o.Device, res.Written)
	defer check.Done()
	for i, r := range ranges {
		h := sha256.New()
		if _, err := io.CopyBuffer(io.MultiWriter(h, check), io.NewSectionReader(dev, r.start, r.end-r.start), buf); err != nil {
			return nil, fmt.Errorf("reading back %s: %w", o.Device, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != sums[i] {
			return nil, fmt.Errorf("%s: bytes %d-%d read back differ from what was written; the device may be failing", o.Device, r.start, r.end)
		}
	}
	return res, nil
}

// FlashTarget checks that device is a block device nothing uses: none of it
// or its partitions mounted or swapped on.
func FlashTarget(device string) error {
	st, err := os.Stat(device)
	if err != nil {
		return fmt.Errorf("device %s: %w", device, unwrapPath(err))
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return fmt.Errorf("%s is not a block device; pass the whole disk (/dev/sdX, /dev/mmcblkN)", device)
	}
	names, err := blockNames(st)
	if err != nil {
		return err
	}
	for _, f := range []struct{ path, what string }{{"/proc/self/mountinfo", "mounted"}, {"/proc/swaps", "in use as swap"}} {
		if who := usedBy(f.path, names); who != "" {
			return fmt.Errorf("%s is %s (%s); unmount it first, and never flash the disk the running system is on", device, f.what, who)
		}
	}
	return nil
}

// openImage returns the raw image's bytes, decompressing .zst and .xz.
func openImage(ctx context.Context, path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, unwrapPath(err))
	}
	switch {
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			f.Close()
			return nil, err
		}
		return readCloser{zr.IOReadCloser(), f}, nil
	case strings.HasSuffix(path, ".xz"):
		cmd := exec.CommandContext(ctx, "xz", "-dc")
		cmd.Stdin = f
		out, err := cmd.StdoutPipe()
		if err != nil {
			f.Close()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			f.Close()
			return nil, fmt.Errorf("xz: %w; install xz-utils", err)
		}
		return readCloser{out, closerFunc(func() error { f.Close(); return cmd.Wait() })}, nil
	}
	return f, nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error {
	if rc, ok := r.Reader.(io.Closer); ok {
		rc.Close()
	}
	return r.c.Close()
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// imageSize is the raw size of an image without a bmap: the file's size,
// or the decompressed size a compressed image must give with a bmap.
func imageSize(path string) (int64, error) {
	if strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".xz") {
		return 0, fmt.Errorf("%s is compressed and has no bmap beside it; pass --bmap, or decompress it first", path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

var (
	bmapField = regexp.MustCompile(`<(ImageSize|BlockSize)>\s*(\d+)\s*</`)
	bmapRange = regexp.MustCompile(`<Range chksum="([0-9a-f]{64})">\s*(\d+)(?:-(\d+))?\s*</Range>`)
)

// maxBmap bounds the block map read: one line per range.
const maxBmap = 64 << 20

// parseBmap reads a bmap (format 2.x, sha256) into byte ranges.
func parseBmap(data []byte) (int64, []flashRange, error) {
	if len(data) > maxBmap {
		return 0, nil, errors.New("too large to be a bmap")
	}
	if !bytes.Contains(data, []byte(`<bmap version="2.`)) || !bytes.Contains(data, []byte("<ChecksumType> sha256 </ChecksumType>")) {
		return 0, nil, errors.New("not a bmap of version 2 with sha256 checksums")
	}
	fields := map[string]int64{}
	for _, m := range bmapField.FindAllSubmatch(data, -1) {
		n, err := strconv.ParseInt(string(m[2]), 10, 64)
		if err != nil {
			return 0, nil, err
		}
		fields[string(m[1])] = n
	}
	size, block := fields["ImageSize"], fields["BlockSize"]
	if size <= 0 || block <= 0 {
		return 0, nil, errors.New("no ImageSize or BlockSize")
	}
	var ranges []flashRange
	last := int64(0)
	for _, m := range bmapRange.FindAllSubmatch(data, -1) {
		first, _ := strconv.ParseInt(string(m[2]), 10, 64)
		end := first
		if len(m[3]) > 0 {
			end, _ = strconv.ParseInt(string(m[3]), 10, 64)
		}
		r := flashRange{start: first * block, end: min((end+1)*block, size), sum: string(m[1])}
		if r.start < last || r.end <= r.start {
			return 0, nil, fmt.Errorf("range %d-%d is out of order or outside the image", first, end)
		}
		ranges = append(ranges, r)
		last = r.end
	}
	return size, ranges, nil
}
