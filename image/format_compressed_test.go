package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestBmap(t *testing.T) {
	img := make([]byte, 6*bmapBlock+100)
	img[1*bmapBlock] = 1
	img[2*bmapBlock+7] = 2
	img[5*bmapBlock+9] = 3
	img[6*bmapBlock+99] = 4 // a partial last block
	bm, err := makeBmap(bytes.NewReader(img), int64(len(img)))
	must(t, err)
	checkBmap(t, bm, img)
	ranges := regexp.MustCompile(`> (\S+) </Range>`).FindAllStringSubmatch(string(bm), -1)
	var got []string
	for _, r := range ranges {
		got = append(got, r[1])
	}
	if strings.Join(got, " ") != "1-2 5-6" {
		t.Errorf("ranges %q, want 1-2 5-6", got)
	}
	for field, want := range map[string]string{"ImageSize": "24676", "BlocksCount": "7", "MappedBlocksCount": "4"} {
		if !strings.Contains(string(bm), "<"+field+"> "+want+" </"+field+">") {
			t.Errorf("bmap has no %s %s:\n%s", field, want, bm)
		}
	}
}

// checkBmap checks what bmaptool checks: the file's own checksum and every
// range's, against img.
func checkBmap(t *testing.T, bm, img []byte) {
	t.Helper()
	fileSum := regexp.MustCompile(`<BmapFileChecksum> ([0-9a-f]{64}) </BmapFileChecksum>`).FindSubmatch(bm)
	if fileSum == nil {
		t.Fatalf("bmap has no BmapFileChecksum:\n%s", bm)
	}
	zeroed := bytes.Replace(bm, fileSum[1], []byte(strings.Repeat("0", 64)), 1)
	if sum := sha256.Sum256(zeroed); hex.EncodeToString(sum[:]) != string(fileSum[1]) {
		t.Error("BmapFileChecksum does not match the file")
	}
	for _, m := range regexp.MustCompile(`<Range chksum="([0-9a-f]{64})"> (\d+)(?:-(\d+))? </Range>`).FindAllSubmatch(bm, -1) {
		first, _ := strconv.Atoi(string(m[2]))
		last := first
		if len(m[3]) > 0 {
			last, _ = strconv.Atoi(string(m[3]))
		}
		end := min((last+1)*bmapBlock, len(img))
		if sum := sha256.Sum256(img[first*bmapBlock : end]); hex.EncodeToString(sum[:]) != string(m[1]) {
			t.Errorf("range %d-%d: checksum does not match the image", first, last)
		}
	}
}

// TestCompressedDiskFormats builds qcow2, zst and xz without the raw disk
// format and checks each holds the same disk, which the bmap describes.
func TestCompressedDiskFormats(t *testing.T) {
	for _, tool := range []string{"qemu-img", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps)", tool)
		}
	}
	initBin, _, err := buildInit(context.Background(), "", "amd64", t.TempDir(), nil)
	must(t, err)
	res := build(t, Options{Board: "qemu-x86_64", Out: t.TempDir(), Init: initBin, Formats: []string{"xz", "qcow2", "zst"}, SourceDateEpoch: 1700000000})
	var names []string
	for _, a := range res.Info.Artifacts {
		names = append(names, a.Name)
	}
	if strings.Join(names, " ") != "disk.qcow2 disk.img.zst disk.img.bmap disk.img.xz" {
		t.Errorf("artifacts %q, want disk.qcow2 disk.img.zst disk.img.bmap disk.img.xz", names)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "disk.img")); err == nil {
		t.Error("disk.img was written though the disk format was not asked for")
	}

	zf, err := os.Open(filepath.Join(res.Dir, "disk.img.zst"))
	must(t, err)
	defer zf.Close()
	zr, err := zstd.NewReader(zf)
	must(t, err)
	defer zr.Close()
	raw, err := io.ReadAll(zr)
	must(t, err)
	out, err := exec.Command("xz", "-dc", filepath.Join(res.Dir, "disk.img.xz")).Output()
	must(t, err)
	if !bytes.Equal(raw, out) {
		t.Error("disk.img.zst and disk.img.xz hold different images")
	}
	qraw := filepath.Join(t.TempDir(), "from-qcow2.img")
	must(t, exec.Command("qemu-img", "convert", "-f", "qcow2", "-O", "raw", filepath.Join(res.Dir, "disk.qcow2"), qraw).Run())
	q, err := os.ReadFile(qraw)
	must(t, err)
	if !bytes.Equal(raw, q) {
		t.Error("disk.qcow2 holds another image than disk.img.zst")
	}
	info, err := exec.Command("qemu-img", "info", "--output=json", filepath.Join(res.Dir, "disk.qcow2")).Output()
	must(t, err)
	var qi struct {
		Format string `json:"format"`
	}
	must(t, json.Unmarshal(info, &qi))
	if qi.Format != "qcow2" {
		t.Errorf("disk.qcow2 is %q to qemu-img, want qcow2", qi.Format)
	}
	bm, err := os.ReadFile(filepath.Join(res.Dir, "disk.img.bmap"))
	must(t, err)
	checkBmap(t, bm, raw)
}
