package image

import (
	"context"
	"fmt"

	"github.com/cairn-os/cairn/config/layout"
)

// pxeFormat writes pxe/: the kernel, the live initramfs (the system image
// inside: it runs from RAM) and boot.ipxe, an iPXE script that boots them
// from wherever it was loaded (TFTP or HTTP, paths relative to the script)
// and passes the iPXE setting cairn-config, when set, as cairn.config=URL.
var pxeFormat = format{name: "pxe", write: writePXE}

// ipxeScript boots vmlinuz and initramfs.img beside the script.
func ipxeScript(cmdline string) string {
	return fmt.Sprintf(`#!ipxe
# cairn: boot the live image beside this script. Set cairn-config to a
# cloud-config URL (set cairn-config http://.../node.yaml) before chaining
# here, or in the DHCP server's options, to pass cairn.config=URL.
isset ${cairn-config} && set cairn-cfg cairn.config=${cairn-config} || set cairn-cfg
kernel vmlinuz initrd=initramfs.img %s ${cairn-cfg}
initrd initramfs.img
boot
`, cmdline)
}

func writePXE(ctx context.Context, a *artifacts) error {
	ird, err := a.liveInitramfs()
	if err != nil {
		return err
	}
	if err := a.files.copy("pxe/vmlinuz", a.k.VmlinuzPath()); err != nil {
		return err
	}
	if err := a.files.copy("pxe/initramfs.img", ird); err != nil {
		return err
	}
	return a.files.write("pxe/boot.ipxe", []byte(ipxeScript(a.cmdlineFor(layout.SystemLive))))
}
