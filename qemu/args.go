package qemu

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
)

// args returns QEMU's command line (without the binary) for c, with the QMP
// socket at qmpPath. It is pure so tests can check it.
func (c *Config) args(qmpPath string) ([]string, error) {
	b := c.Board
	if b == nil || b.QEMU == nil {
		return nil, errors.New("qemu: no board, or the board has no qemu section: QEMU cannot emulate it")
	}
	direct := c.Kernel != "" || c.Initrd != ""
	netBoot := -1 // the NIC a network boot starts from
	for i, n := range c.NICs {
		if n.BootFile != "" && netBoot < 0 && !direct && len(c.Drives) == 0 {
			netBoot = i
		}
	}
	switch {
	case direct && (c.Kernel == "" || c.Initrd == ""):
		return nil, errors.New("qemu: a direct kernel boot needs both the kernel and the initramfs: pass the directory `cairn build` wrote")
	case !direct && len(c.Drives) == 0 && netBoot < 0:
		return nil, errors.New("qemu: nothing to boot: no kernel and initramfs (build them with `cairn build` and pass the output directory), no disk and no network boot file")
	case c.DTB != "" && !direct:
		return nil, errors.New("qemu: a device tree (-dtb) needs a direct kernel boot; firmware brings its own")
	case !direct && len(c.ExtraCmdline) > 0:
		return nil, errors.New("qemu: extra kernel arguments need a direct kernel boot; a disk's bootloader has its own command line")
	}
	mem := c.Memory
	if mem == 0 {
		mem = b.QEMU.Memory
	}
	if mem == 0 {
		mem = 1024
	}
	smp := c.SMP
	if smp == 0 {
		smp = 1
	}
	a := []string{
		"-nodefaults", "-no-user-config",
		// TCG only: /dev/kvm exists on the machines this runs on but hangs.
		"-accel", "tcg",
		"-machine", b.QEMU.Machine,
		"-m", fmt.Sprint(mem),
		"-smp", fmt.Sprint(smp),
		"-display", "none",
		"-qmp", "unix:" + qmpPath + ",server=on,wait=off",
	}
	if !c.NoRNG {
		a = append(a, "-device", "virtio-rng-pci")
	}
	if b.QEMU.CPU != "" {
		a = append(a, "-cpu", b.QEMU.CPU)
	}
	firmware := b.QEMU.Firmware
	if c.Firmware != "" {
		firmware = c.Firmware
	}
	switch {
	case direct:
		a = append(a, "-kernel", c.Kernel, "-initrd", c.Initrd, "-append", c.cmdline())
		if c.DTB != "" {
			a = append(a, "-dtb", c.DTB)
		}
	case firmware != "" && firmware != SeaBIOS:
		// A disk boots through the board's firmware; none means BIOS.
		a = append(a, "-bios", firmware)
	}
	if !c.AllowReboot {
		a = append(a, "-no-reboot")
	}
	if c.Interactive {
		// What -nographic does, spelled out: serial console and monitor
		// multiplexed on the terminal, Ctrl-A X quits.
		a = append(a,
			"-chardev", "stdio,id=con0,mux=on,signal=off",
			"-serial", "chardev:con0",
			"-mon", "chardev=con0,mode=readline")
	} else {
		a = append(a,
			"-chardev", "stdio,id=con0,signal=off",
			"-serial", "chardev:con0",
			"-monitor", "none")
	}

	// The seed comes first on the bus; without a direct kernel the first
	// further drive is the boot disk.
	drives := c.Drives
	bootDisk := 0
	if c.Seed != "" {
		drives = append([]Drive{{Path: c.Seed, ReadOnly: true}}, drives...)
		bootDisk = 1
	}
	scsi := false
	for i, d := range drives {
		if strings.Contains(d.Path, ",") {
			return nil, fmt.Errorf("qemu: drive path %q contains a comma, which QEMU's -drive cannot take: rename it", d.Path)
		}
		format := d.Format
		if format == "" {
			format = "raw"
		}
		opt := fmt.Sprintf("file=%s,if=none,format=%s,id=drive%d", d.Path, format, i)
		if d.ReadOnly {
			opt += ",readonly=on"
		}
		if d.Snapshot {
			opt += ",snapshot=on"
		}
		var dev string
		switch d.Media {
		case "":
			dev = fmt.Sprintf("virtio-blk-pci,drive=drive%d", i)
		case MediaCDROM:
			if !scsi {
				a = append(a, "-device", "virtio-scsi-pci,id=scsi0")
				scsi = true
			}
			opt += ",media=cdrom,readonly=on"
			dev = fmt.Sprintf("scsi-cd,drive=drive%d,bus=scsi0.0", i)
		case MediaSD:
			// The machine's own SD controller takes it; no device.
			a = append(a, "-drive", strings.Replace(opt, "if=none", "if=sd", 1))
			continue
		default:
			return nil, fmt.Errorf("qemu: drive %s: media %q is not a disk, %s or %s", d.Path, d.Media, MediaCDROM, MediaSD)
		}
		if !direct && i == bootDisk {
			dev += ",bootindex=0"
		}
		a = append(a, "-drive", opt, "-device", dev)
	}

	nics := c.NICs
	if nics == nil {
		nics = []NIC{{}}
	}
	for i, n := range nics {
		mac := n.MAC
		if mac == "" {
			var err error
			if mac, err = randomMAC(); err != nil {
				return nil, err
			}
		}
		id := fmt.Sprintf("net%d", i)
		if n.TAP != "" {
			if c.Netns == nil {
				return nil, fmt.Errorf("qemu: NIC %d uses TAP device %s but the machine has no network namespace (set Config.Netns)", i, n.TAP)
			}
			if len(n.Forwards) > 0 {
				return nil, fmt.Errorf("qemu: NIC %d: port forwards need QEMU's user network, not TAP device %s", i, n.TAP)
			}
			a = append(a, "-netdev", fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", id, n.TAP))
		} else {
			opt := "user,id=" + id
			for _, f := range n.Forwards {
				opt += "," + f.hostfwd()
			}
			for _, p := range []string{n.TFTP, n.BootFile} {
				if strings.Contains(p, ",") {
					return nil, fmt.Errorf("qemu: NIC %d: %q contains a comma, which QEMU's -netdev cannot take: rename it", i, p)
				}
			}
			if n.TFTP != "" {
				opt += ",tftp=" + n.TFTP
			}
			if n.BootFile != "" {
				opt += ",bootfile=" + n.BootFile
			}
			a = append(a, "-netdev", opt)
		}
		if n.TAP != "" && (n.TFTP != "" || n.BootFile != "") {
			return nil, fmt.Errorf("qemu: NIC %d: TFTP and a boot file need QEMU's user network, not TAP device %s", i, n.TAP)
		}
		dev := fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s", id, mac)
		if i == netBoot {
			dev += ",bootindex=0"
		}
		a = append(a, "-device", dev)
	}
	return a, nil
}

// randomMAC returns a locally administered unicast address in QEMU's
// 52:54:00 prefix.
func randomMAC() (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("qemu: random MAC address: %w", err)
	}
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]), nil
}
