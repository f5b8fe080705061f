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
	if c.Kernel == "" || c.Initrd == "" {
		return nil, errors.New("qemu: no kernel or initramfs given: build them with `cairn build` and pass the output directory")
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
		"-kernel", c.Kernel,
		"-initrd", c.Initrd,
		"-append", c.cmdline(),
		"-qmp", "unix:" + qmpPath + ",server=on,wait=off",
		"-device", "virtio-rng-pci",
	}
	if b.QEMU.CPU != "" {
		a = append(a, "-cpu", b.QEMU.CPU)
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

	drives := c.Drives
	if c.Seed != "" {
		drives = append([]Drive{{Path: c.Seed, ReadOnly: true}}, drives...)
	}
	for i, d := range drives {
		if strings.Contains(d.Path, ",") {
			return nil, fmt.Errorf("qemu: drive path %q contains a comma, which QEMU's -drive cannot take: rename it", d.Path)
		}
		format := d.Format
		if format == "" {
			format = "raw"
		}
		opt := fmt.Sprintf("file=%s,if=virtio,format=%s,id=drive%d", d.Path, format, i)
		if d.ReadOnly {
			opt += ",readonly=on"
		}
		if d.Snapshot {
			opt += ",snapshot=on"
		}
		a = append(a, "-drive", opt)
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
