package image

import (
	"strings"
	"testing"
)

func TestCodecsFollowTheKernelConfig(t *testing.T) {
	cases := []struct {
		config, asked      string
		initramfs, sqfs    string
		initErr, sqfsErrIs string
	}{
		{config: "CONFIG_RD_ZSTD=y\nCONFIG_RD_GZIP=y\nCONFIG_SQUASHFS=m\nCONFIG_SQUASHFS_ZSTD=y\nCONFIG_SQUASHFS_XZ=y\n", initramfs: "zstd", sqfs: "zstd"},
		{config: "CONFIG_RD_ZSTD=y\nCONFIG_RD_GZIP=y\nCONFIG_SQUASHFS=y\nCONFIG_SQUASHFS_ZSTD=y\n", asked: "gzip", initramfs: "gzip", sqfs: "zstd"},
		{config: "# CONFIG_RD_ZSTD is not set\nCONFIG_RD_GZIP=y\nCONFIG_SQUASHFS=y\nCONFIG_SQUASHFS_XZ=y\n", initramfs: "gzip", sqfs: "xz"},
		{config: "CONFIG_RD_GZIP=y\nCONFIG_SQUASHFS=y\nCONFIG_SQUASHFS_ZLIB=y\n", asked: "zstd", initErr: "cannot unpack a zstd initramfs (CONFIG_RD_ZSTD is not set)", sqfs: "gzip"},
		{config: "CONFIG_RD_ZSTD=y\n", initramfs: "zstd", sqfsErrIs: "has no squashfs"},
	}
	for _, c := range cases {
		k := &Kernel{Release: "6.1.0-99-amd64", Config: c.config}
		got, err := initramfsCodec(c.asked, k)
		switch {
		case c.initErr != "" && (err == nil || !strings.Contains(err.Error(), c.initErr)):
			t.Errorf("%q asked %q: initramfs error %v, want %q", c.config, c.asked, err, c.initErr)
		case c.initErr == "" && (err != nil || got != c.initramfs):
			t.Errorf("%q asked %q: initramfs %q, %v; want %q", c.config, c.asked, got, err, c.initramfs)
		}
		got, err = squashfsCodec(k)
		switch {
		case c.sqfsErrIs != "" && (err == nil || !strings.Contains(err.Error(), c.sqfsErrIs)):
			t.Errorf("%q: squashfs error %v, want %q", c.config, err, c.sqfsErrIs)
		case c.sqfsErrIs == "" && (err != nil || got != c.sqfs):
			t.Errorf("%q: squashfs %q, %v; want %q", c.config, got, err, c.sqfs)
		}
	}
}
