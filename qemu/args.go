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
	switch {
	case direct && (c.Kernel == "" || c.Initrd == ""):
		return nil, errors.New("qemu: a direct kernel boot needs both the kernel and the initramfs: pass the directory `cairn build` wrote")
	case !direct && len(c.Drives) == 0:
		return nil, errors.New("qemu: nothing to boot: no kernel and initramfs (build them with `cairn build` and pass the output directory) and no disk")
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
		"-device", "virtio-rng-pci",
	}
	if b.QEMU.CPU != "" {
		a = append(a, "-cpu", b.QEMU.CPU)
	}
	if direct {
		a = append(a, "-kernel", c.Kernel, "-initrd", c.Initrd, "-append", c.cmdline())
	} else if b.QEMU.Firmware != "" {
		// A disk boots through the board's firmware; none means BIOS.
		a = append(a, "-bios", b.QEMU.Firmware)
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
		dev := fmt.Sprintf("virtio-blk-pci,drive=drive%d", i)
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
			a = append(a, "-netdev", opt)
		}
		a = append(a, "-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s", id, mac))
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
