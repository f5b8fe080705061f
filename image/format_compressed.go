package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// zstFormat and xzFormat write the raw disk image (disk.img, or a Pi's
// sdcard.img) compressed for download and flashing (disk.img.zst,
// disk.img.xz), with disk.img.bmap, the map of its blocks that hold data,
// for bmaptool and cairn flash.
var (
	zstFormat = format{name: "zst", bootloader: true, firmware: true, supports: needsDiskBoot, write: writeZst}
	xzFormat  = format{name: "xz", bootloader: true, firmware: true, supports: needsDiskBoot, write: writeXz}
)

func writeZst(ctx context.Context, a *artifacts) error {
	raw, err := a.rawDisk(ctx)
	if err != nil {
		return err
	}
	w, err := a.files.create(a.rawName() + ".zst")
	if err != nil {
		return err
	}
	a.prog.start("compressing the disk image (zstd)")
	defer a.prog.done()
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		w.Close()
		return err
	}
	if err := copyFileTo(zw, raw); err != nil {
		w.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return a.writeBmap(raw)
}

func writeXz(ctx context.Context, a *artifacts) error {
	tool, err := exec.LookPath("xz")
	if err != nil {
		return errors.New("xz not found; install xz-utils (make deps)")
	}
	raw, err := a.rawDisk(ctx)
	if err != nil {
		return err
	}
	w, err := a.files.create(a.rawName() + ".xz")
	if err != nil {
		return err
	}
	in, err := os.Open(raw)
	if err != nil {
		w.Close()
		return err
	}
	defer in.Close()
	// Two threads on fixed 64 MiB blocks: the output depends on the block
	// size, which is fixed, never on the machine's cores.
	cmd := exec.CommandContext(ctx, tool, "-T2", "--block-size=64MiB", "-6", "-c")
	cmd.Stdin, cmd.Stdout = in, w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	a.prog.start("compressing the disk image (xz)")
	err = cmd.Run()
	a.prog.done()
	if err != nil {
		w.Close()
		return fmt.Errorf("xz: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := w.Close(); err != nil {
		return err
	}
	return a.writeBmap(raw)
}

func copyFileTo(w io.Writer, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// writeBmap writes disk.img.bmap (sdcard.img.bmap) for raw, once per build.
func (a *artifacts) writeBmap(raw string) error {
	if a.bmapDone {
		return nil
	}
	f, err := os.Open(raw)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	bm, err := makeBmap(f, st.Size())
	if err != nil {
		return fmt.Errorf("bmap: %w", err)
	}
	a.bmapDone = true
	return a.files.write(a.rawName()+".bmap", bm)
}

// bmapBlock is the block size of the maps cairn writes.
const bmapBlock = 4096

// makeBmap returns bmaptool's block map (format 2.0) of the image in r:
// the ranges of blocks that are not all zeros, each with its sha256.
func makeBmap(r io.Reader, size int64) ([]byte, error) {
	type span struct {
		first, last int64
		sum         string
	}
	var spans []span
	buf := make([]byte, bmapBlock)
	zero := make([]byte, bmapBlock)
	var cur *span
	h := sha256.New()
	mapped := int64(0)
	blocks := (size + bmapBlock - 1) / bmapBlock
	end := func() {
		if cur != nil {
			cur.sum = hex.EncodeToString(h.Sum(nil))
			spans = append(spans, *cur)
			cur = nil
			h.Reset()
		}
	}
	for i := int64(0); i < blocks; i++ {
		n, err := io.ReadFull(r, buf)
		if err != nil && err != io.ErrUnexpectedEOF {
			return nil, err
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			end()
			continue
		}
		if cur == nil {
			cur = &span{first: i}
		}
		cur.last = i
		h.Write(buf[:n])
		mapped++
	}
	end()
	var b bytes.Buffer
	fmt.Fprintf(&b, "<?xml version=\"1.0\" ?>\n<bmap version=\"2.0\">\n")
	fmt.Fprintf(&b, "    <ImageSize> %d </ImageSize>\n    <BlockSize> %d </BlockSize>\n", size, bmapBlock)
	fmt.Fprintf(&b, "    <BlocksCount> %d </BlocksCount>\n    <MappedBlocksCount> %d </MappedBlocksCount>\n", blocks, mapped)
	fmt.Fprintf(&b, "    <ChecksumType> sha256 </ChecksumType>\n")
	fmt.Fprintf(&b, "    <BmapFileChecksum> %s </BmapFileChecksum>\n", strings.Repeat("0", 64))
	fmt.Fprintf(&b, "    <BlockMap>\n")
	for _, s := range spans {
		if s.first == s.last {
			fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d </Range>\n", s.sum, s.first)
		} else {
			fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d-%d </Range>\n", s.sum, s.first, s.last)
		}
	}
	fmt.Fprintf(&b, "    </BlockMap>\n</bmap>\n")
	// The file's own checksum is taken with the field all zeros.
	sum := sha256.Sum256(b.Bytes())
	return bytes.Replace(b.Bytes(), []byte(strings.Repeat("0", 64)), []byte(hex.EncodeToString(sum[:])), 1), nil
}
