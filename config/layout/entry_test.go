package layout

import "testing"

// TestLoaderEntry: the one entry format the image builder, an upgrade and
// the container platform's node directory all write.
func TestLoaderEntry(t *testing.T) {
	for _, tc := range []struct {
		name, slot, title string
		version           int64
		cmdline, want     string
	}{
		{"a build's slot A", "a", "v1.2", 1700000000, "console=ttyS0 cairn.system=disk cairn.slot=a",
			"title cairn v1.2 (slot A)\nsort-key cairn\nversion 1700000000\nlinux /EFI/cairn/a/vmlinuz\ninitrd /EFI/cairn/a/initrd.img\noptions console=ttyS0 cairn.system=disk cairn.slot=a\n"},
		{"no title", "b", "", 1, "cairn.system=disk cairn.slot=b",
			"title cairn (slot B)\nsort-key cairn\nversion 1\nlinux /EFI/cairn/b/vmlinuz\ninitrd /EFI/cairn/b/initrd.img\noptions cairn.system=disk cairn.slot=b\n"},
	} {
		if got := LoaderEntry(tc.slot, tc.title, tc.version, tc.cmdline); got != tc.want {
			t.Errorf("%s:\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}
