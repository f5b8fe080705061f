package datasource

import (
	"os"
	"testing"

	"github.com/cairn-os/cairn/init/cmdline"
)

// The readers take outside input (any block device); they must never panic
// or loop, whatever the bytes.

func FuzzVolume(f *testing.F) {
	for _, p := range []string{"testdata/seed-fat12.img", "testdata/seed.iso"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add(make([]byte, 64<<10))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, _, err := openVolume(bytesReaderAt(b))
		if err != nil {
			return
		}
		_ = v.Label()
		for _, p := range []string{"user-data", "meta-data", "openstack/latest/user_data"} {
			v.ReadFile(p)
		}
	})
}

func FuzzNetworkConfig(f *testing.F) {
	f.Add([]byte("version: 1\nconfig:\n  - type: physical\n    name: eth0\n    subnets: [{type: static, address: 10.0.0.1, netmask: 255.0.0.0}]\n  - {type: nameserver, address: 1.1.1.1}\n"))
	f.Add([]byte("version: 2\nethernets: {eth0: {dhcp4: true}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		networkConfig("nc", b)
	})
}

func FuzzCmdline(f *testing.F) {
	f.Add(`"ds=nocloud;s=http://x/;h=n" cairn.config=http://y cairn.datasource=ec2`)
	f.Fuzz(func(t *testing.T, s string) {
		parseCmdline(cmdline.Parse(s))
	})
}
