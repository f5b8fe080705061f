package container

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
)

// systemName is the system image's name in a live initramfs's last
// (uncompressed) cpio archive, as the image builder writes it.
const systemName = "system.sqfs"

// maxScan bounds how far into an initramfs the system image's cpio header
// is looked for: the compressed stage-1 archive comes first.
const maxScan = 256 << 20

// SystemImageOffset finds the system image (squashfs) inside a live
// initramfs written by `cairn build`: the stage-1 archive (compressed),
// then an uncompressed newc cpio holding /system.sqfs. It returns the
// offset and size of the squashfs.
func SystemImageOffset(initramfs string) (offset, size int64, err error) {
	f, err := os.Open(initramfs)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	return findSystemImage(f, st.Size())
}

func findSystemImage(r io.ReaderAt, total int64) (int64, int64, error) {
	const chunk = 1 << 20
	const hdr = 110
	buf := make([]byte, chunk+hdr+64)
	for base := int64(0); base < total && base < maxScan; base += chunk {
		n, err := r.ReadAt(buf, base)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		b := buf[:n]
		for i := 0; i < chunk && i+hdr+len(systemName)+1 <= len(b); i += 4 {
			if b[i] != '0' || !bytes.HasPrefix(b[i:], []byte("07070")) || (b[i+5] != '1' && b[i+5] != '2') {
				continue
			}
			h := b[i : i+hdr]
			nameSize, err1 := strconv.ParseUint(string(h[94:102]), 16, 32)
			fileSize, err2 := strconv.ParseUint(string(h[54:62]), 16, 32)
			if err1 != nil || err2 != nil || nameSize < 2 || nameSize > 64 || i+hdr+int(nameSize) > len(b) {
				continue
			}
			name := string(bytes.TrimPrefix(b[i+hdr:i+hdr+int(nameSize)-1], []byte("/")))
			if name != systemName {
				continue
			}
			data := base + int64(i) + int64((hdr+int(nameSize)+3)&^3)
			magic := make([]byte, 4)
			if _, err := r.ReadAt(magic, data); err != nil || string(magic) != "hsqs" {
				return 0, 0, fmt.Errorf("the archive entry %s at offset %d is not a squashfs", systemName, data)
			}
			if data+int64(fileSize) > total {
				return 0, 0, fmt.Errorf("the archive entry %s is cut short", systemName)
			}
			return data, int64(fileSize), nil
		}
	}
	return 0, 0, fmt.Errorf("no %s found: not a live initramfs from `cairn build` (format kernel)", systemName)
}

// Node is one node of the container platform: the init started on Disk
// in the network namespace Netns.
type Node struct {
	// Init is the init binary to run (ExtractInit): the launcher, and the
	// first stage of each boot, which starts the slot's own init.
	Init string
	// Disk is the node's directory (NewDisk), booted from the slot its
	// loader entries name, again at each reboot of the node.
	Disk string
	// Netns is the path of the node's network namespace (AddPeer).
	Netns string
	// Cmdline is the node's kernel command line; "cairn.platform=container"
	// when empty.
	Cmdline string
	// Log receives the node's console.
	Log string
}

// Start runs the init detached: it becomes PID 1 of new PID, mount, UTS
// and IPC namespaces in Netns and runs until it is sent SIGTERM (an
// orderly shutdown) or SIGKILL (its PID 1 is killed with it). On a Disk,
// the node's reboots (an upgrade's) happen inside that one process.
func (n Node) Start() (Proc, error) {
	line := n.Cmdline
	if line == "" {
		line = "cairn.platform=container"
	}
	cmd := exec.Command(n.Init, "-platform", "container", "-disk", n.Disk, "-netns", n.Netns, "-cmdline", line)
	cmd.Dir = "/"
	// Nothing of the caller's environment (a token in $CAIRN_TOKEN, for
	// one) reaches the node.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	return StartDetached(cmd, n.Log)
}
