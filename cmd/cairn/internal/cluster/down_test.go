package cluster

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMatchMounts(t *testing.T) {
	info := `22 1 0:21 / /proc rw - proc proc rw
90 22 0:4 net:[4026532] /run/netns/cairn-cluster-dev rw - nsfs nsfs rw
91 22 0:4 net:[4026533] /run/netns/cairn-cluster-dev.s1 rw - nsfs nsfs rw
92 22 0:4 net:[4026534] /run/netns/cairn-cluster-devx rw - nsfs nsfs rw
93 22 0:50 / /var/lib/cairn-cluster/dev/nodes/s1/root/proc rw - proc proc rw
94 22 0:50 / /var/lib/cairn-cluster/devx rw - tmpfs tmpfs rw
`
	got := matchMounts(strings.NewReader(info), "/var/lib/cairn-cluster/dev", "cairn-cluster-dev")
	want := []string{"/var/lib/cairn-cluster/dev/nodes/s1/root/proc", "/run/netns/cairn-cluster-dev.s1", "/run/netns/cairn-cluster-dev"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("matchMounts = %q; want %q", got, want)
	}
}

func TestList(t *testing.T) {
	var out bytes.Buffer
	if err := List(&out, filepath.Join(t.TempDir(), "none")); err != nil || out.String() != "no clusters\n" {
		t.Errorf("list of no state directory: %q, %v", out.String(), err)
	}
	dir := t.TempDir()
	d := filepath.Join(dir, "dev")
	os.Mkdir(d, 0o700)
	validState().save(d)
	out.Reset()
	if err := List(&out, dir); err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"dev: container, postgres datastore, 192.168.200.0/24, not ready", "dev-s1 server 192.168.200.11 stopped (was pid 200)", "dev-a1 agent (qemu) 192.168.200.101", "postgres datastore"} {
		if !strings.Contains(flat, want) {
			t.Errorf("list lacks %q:\n%s", want, out.String())
		}
	}
}
