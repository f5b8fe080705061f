package image

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/config/layout"
)

// sdcardFormat writes sdcard.img for a board its own firmware boots (the
// Raspberry Pi): the slots and STATE of disk.img behind a boot partition
// the firmware reads, FAT32 and listed in a hybrid MBR as well as the GPT.
// It holds the firmware files (board.firmware.files), config.txt and
// tryboot.txt, each naming the slot it boots (os_prefix=a/), and slot A's
// directory: vmlinuz, initrd.img (stage 1), cmdline.txt and the board's
// device trees. An update writes slot B's partition and directory, points
// tryboot.txt at b/ and restarts with `reboot "0 tryboot"`; the init makes
// config.txt point there once stage 1 is done, and any reset before that
// boots slot A again.
var sdcardFormat = format{name: "sdcard", firmware: true, supports: needsFirmware, write: writeSDCard}

func needsFirmware(b *boards.Board) error {
	if b.Firmware == nil {
		return errors.New("names no boot firmware (firmware: in its board file)")
	}
	return nil
}

// piBoot is the Raspberry Pi's boot partition.
var piBoot = bootPartition{typ: gpt.MicrosoftBasicData, files: piFiles, hybridMBR: true}

func writeSDCard(ctx context.Context, a *artifacts) error {
	out, err := a.files.reserve("sdcard.img")
	if err != nil {
		return err
	}
	if err := makeDisk(ctx, a, out, piBoot); err != nil {
		return err
	}
	a.disk = out
	return nil
}

// piConfig is config.txt (or tryboot.txt) booting slot: the board's
// lines, then the slot's directory and the files in it.
func piConfig(b *boards.Board, slot, file string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "# cairn: %s for %s, read by the Raspberry Pi firmware.\n", file, b.Name)
	if file == layout.PiTryboot {
		s.WriteString("# Read instead of config.txt for the one boot after `reboot \"0 tryboot\"`:\n# an update points os_prefix at the new slot here.\n")
	} else {
		s.WriteString("# os_prefix names the trusted slot; the init changes it after a\n# successful trial boot of the slot tryboot.txt names.\n")
	}
	s.WriteString(strings.TrimSpace(b.Firmware.Config) + "\n")
	fmt.Fprintf(&s, "os_prefix=%s/\nkernel=vmlinuz\ninitramfs initrd.img followkernel\ncmdline=cmdline.txt\n", slot)
	return s.String()
}

// piFiles are the Pi boot partition's files.
func piFiles(a *artifacts, ird string) ([]fatFile, error) {
	slot := layout.SlotA
	files := append([]fatFile(nil), a.firmware...)
	files = append(files,
		fatFile{path: "/" + layout.PiConfig, data: []byte(piConfig(a.b, slot, layout.PiConfig))},
		fatFile{path: "/" + layout.PiTryboot, data: []byte(piConfig(a.b, slot, layout.PiTryboot))},
		fatFile{path: "/" + slot + "/vmlinuz", src: a.k.VmlinuzPath(), slot: true},
		fatFile{path: "/" + slot + "/initrd.img", src: ird, slot: true},
		fatFile{path: "/" + slot + "/cmdline.txt", data: []byte(a.cmdlineFor(layout.SystemDisk, layout.SlotParam+"="+slot) + "\n"), slot: true},
	)
	for _, rel := range a.b.DTBs {
		files = append(files, fatFile{path: "/" + slot + "/" + path.Base(rel), src: a.k.DTBPath(rel), slot: true})
	}
	return files, nil
}
