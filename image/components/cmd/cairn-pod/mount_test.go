package main

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestParseMount: the invocations k8s.io/mount-utils makes for the
// kubelet's volumes.
func TestParseMount(t *testing.T) {
	for _, tt := range []struct {
		args                   string
		source, target, fstype string
		flags, propagation     uintptr
		data                   string
	}{
		{"-t tmpfs -o size=1073741824 tmpfs /var/lib/kubelet/pods/x/volumes/v", "tmpfs", "/var/lib/kubelet/pods/x/volumes/v", "tmpfs", 0, 0, "size=1073741824"},
		{"-t tmpfs -o noswap,size=5m tmpfs /t", "tmpfs", "/t", "tmpfs", 0, 0, "noswap,size=5m"},
		{"-o bind /a /b", "/a", "/b", "", unix.MS_BIND, 0, ""},
		{"-o bind,remount,ro /a /b", "/a", "/b", "", unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY, 0, ""},
		{"--no-canonicalize -t ext4 -o defaults,noatime /dev/vdb /data", "/dev/vdb", "/data", "ext4", unix.MS_NOATIME, 0, ""},
		{"--make-rshared /var/lib/kubelet", "", "/var/lib/kubelet", "", 0, unix.MS_SHARED | unix.MS_REC, ""},
		{"-o ro,rw,nosuid -t proc proc /p", "proc", "/p", "proc", unix.MS_NOSUID, 0, ""},
	} {
		m, err := parseMount(strings.Fields(tt.args))
		if err != nil {
			t.Errorf("mount %s: %v", tt.args, err)
			continue
		}
		if m.source != tt.source || m.target != tt.target || m.fstype != tt.fstype || m.flags != tt.flags ||
			m.propagation != tt.propagation || strings.Join(m.data, ",") != tt.data {
			t.Errorf("mount %s = %+v", tt.args, m)
		}
	}
	for _, bad := range []string{"", "/a", "/a /b", "-t", "-x tmpfs /a /b", "-t tmpfs a b c"} {
		if _, err := parseMount(strings.Fields(bad)); err == nil {
			t.Errorf("mount %q: no error", bad)
		}
	}
}
