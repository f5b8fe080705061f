package image

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-os/cairn/boards"
)

// Benchmarks of a rebuild against its floor, the time to compress the same
// payload with the same codecs. Run with `make bench` (or go test -run '^$'
// -bench . ./image/); CAIRN_COMPONENTS=DIR adds the node components (default
// out/components when it exists). Sizes are reported as metrics.

var benchBoards = []string{"qemu-x86_64", "qemu-arm64"}

// benchInits holds one init binary per architecture, built once: others
// edit ./init while benchmarks run, and a changed init would make every
// rebuild a new system image. BenchmarkInitBuild measures that step.
var benchInits = map[string]string{}

func benchOptions(b *testing.B, board string) Options {
	o := Options{Board: board, Kernel: debsDir(b), Out: b.TempDir(), CacheDir: testCache(), SourceDateEpoch: 1700000000}
	bd, err := boards.Load(board)
	if err != nil {
		b.Fatal(err)
	}
	if benchInits[bd.Arch] == "" {
		dir, err := os.MkdirTemp("", "cairn-bench-init-")
		if err != nil {
			b.Fatal(err)
		}
		bin, _, err := buildInit(context.Background(), "", bd.Arch, dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		benchInits[bd.Arch] = bin
	}
	o.Init = benchInits[bd.Arch]
	comps := os.Getenv("CAIRN_COMPONENTS")
	if comps == "" {
		if root, err := repoRoot(); err == nil {
			comps = filepath.Join(root, "out", "components")
		}
	}
	if st, err := os.Stat(filepath.Join(comps, "linux-"+bd.Arch)); err == nil && st.IsDir() {
		o.Components = comps
	}
	return o
}

func reportSizes(b *testing.B, res *Result) {
	for _, a := range res.Info.Artifacts {
		if a.Name != "cmdline" {
			b.ReportMetric(float64(a.Size), a.Name+"-bytes")
		}
	}
	b.ReportMetric(float64(res.Info.SystemImage.Size), "system.sqfs-bytes")
}

// BenchmarkBuild/BOARD/warm is a rebuild with nothing changed: the kernel is
// unpacked, and the init, the system image and the stage-1 archive are
// cached. BenchmarkBuild/BOARD/init-changed compresses the system image and
// the stage-1 archive again, as a change to the init does (a change to the
// components or the config recompresses only the system image).
func BenchmarkBuild(b *testing.B) {
	for _, board := range benchBoards {
		for _, fresh := range []bool{false, true} {
			name := board + "/warm"
			if fresh {
				name = board + "/init-changed"
			}
			b.Run(name, func(b *testing.B) {
				o := benchOptions(b, board)
				res, err := Build(context.Background(), o) // warm the caches
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if fresh {
						b.StopTimer()
						os.RemoveAll(filepath.Join(o.CacheDir, "squashfs"))
						os.RemoveAll(filepath.Join(o.CacheDir, "initramfs"))
						b.StartTimer()
					}
					if res, err = Build(context.Background(), o); err != nil {
						b.Fatal(err)
					}
				}
				reportSizes(b, res)
			})
		}
	}
}

// BenchmarkInitBuild is finding the init of an unchanged ./init in the cache
// (go list and digests of its sources), the part of a warm rebuild the other
// benchmarks leave out; a real `go build` is about a second more.
func BenchmarkInitBuild(b *testing.B) {
	dir := b.TempDir()
	if _, _, err := buildInit(context.Background(), "", "amd64", dir, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := buildInit(context.Background(), "", "amd64", dir, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompressFloor compresses what a build compresses, with the same
// codecs and settings: the stage-1 cpio with the initramfs's zstd encoder,
// and the system tree (as one cpio stream) with libzstd at the squashfs
// level on every core (the zstd command, the library mksquashfs uses).
func BenchmarkCompressFloor(b *testing.B) {
	if _, err := exec.LookPath("zstd"); err != nil {
		b.Skip("zstd is not installed (make deps)")
	}
	for _, board := range benchBoards {
		b.Run(board, func(b *testing.B) {
			o := benchOptions(b, board)
			s, err := o.check()
			if err != nil {
				b.Fatal(err)
			}
			in, err := gather(context.Background(), o, s, nil)
			if err != nil {
				b.Fatal(err)
			}
			p, err := makePlan(s, in, o.Compression, o.Modules)
			if err != nil {
				b.Fatal(err)
			}
			var ird, sys bytes.Buffer
			if err := p.ird.writeCPIO(&ird, 0); err != nil {
				b.Fatal(err)
			}
			if err := p.sys.writeCPIO(&sys, 0); err != nil {
				b.Fatal(err)
			}
			var irdOut, sysOut int64
			for b.Loop() {
				zw, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(2))
				if err != nil {
					b.Fatal(err)
				}
				cw := &countWriter{w: io.Discard}
				zw.Reset(cw)
				zw.Write(ird.Bytes())
				zw.Close()
				irdOut = cw.n
				cmd := exec.Command("zstd", "-"+strconv.Itoa(p.level), "-T0", "-c")
				cmd.Stdin = bytes.NewReader(sys.Bytes())
				out, err := cmd.Output()
				if err != nil {
					b.Fatal(err)
				}
				sysOut = int64(len(out))
			}
			b.ReportMetric(float64(ird.Len()), "stage1-payload-bytes")
			b.ReportMetric(float64(irdOut), "stage1-zstd-bytes")
			b.ReportMetric(float64(sys.Len()), "system-payload-bytes")
			b.ReportMetric(float64(sysOut), "system-zstd-bytes")
		})
	}
}
