package componenttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestContainerdRunsThePauseImage starts the real containerd from the tree,
// imports the tree's pause image with ctr, as the node does at boot, and
// runs it: that goes through containerd-shim-runc-v2 (cairn-pod starting
// itself again through os.Executable()) and the static runc.
func TestContainerdRunsThePauseImage(t *testing.T) {
	root := tree(t, "amd64")
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root")
	}
	v := loadVersions(t)
	bin := filepath.Join(root, "usr/bin")
	dir, err := os.MkdirTemp("", "cairn-ctrd-") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("umount", "-R", filepath.Join(dir, "state")).Run()
		os.RemoveAll(dir)
	})
	sock := filepath.Join(dir, "c.sock")
	config := fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.podsandbox.controller.v1.podsandbox"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	cmd := exec.Command(filepath.Join(bin, "containerd"), "--config", cfg)
	cmd.Env = env
	ctrd := start(t, dir, "containerd", cmd)
	t.Cleanup(func() { ctrd.stop(t, syscall.SIGTERM) })
	waitFor(t, "containerd socket", 2*time.Minute, func() error {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err
	}, ctrd)

	ctr := func(args ...string) (string, error) {
		c := exec.Command(filepath.Join(bin, "ctr"), append([]string{"--address", sock, "--namespace", "k8s.io"}, args...)...)
		c.Env = env
		out, err := c.CombinedOutput()
		return string(out), err
	}
	// --local imports in ctr itself rather than through containerd's
	// transfer service, which unpacks only for its default snapshotter
	// (overlayfs); this host's filesystem may not take overlay mounts, so
	// the test uses the native snapshotter throughout.
	tarball := filepath.Join(root, "usr/share/cairn/images/pause.tar")
	if out, err := ctr("images", "import", "--local", "--snapshotter", "native", tarball); err != nil {
		t.Fatalf("ctr images import %s: %v\n%s\ncontainerd log:\n%s", tarball, err, out, tail(ctrd.log, 2000))
	}
	out, err := ctr("images", "ls", "-q")
	if err != nil || !strings.Contains(out, v["PAUSE_IMAGE"]) {
		t.Fatalf("ctr images ls: %v\n%s\nwant %s listed", err, out, v["PAUSE_IMAGE"])
	}

	out, err = ctr("run", "--rm", "--snapshotter", "native", v["PAUSE_IMAGE"], "cairn-pause-test", "/pause", "--version")
	want := "pause (cairn) " + v["PAUSE_IMAGE"][strings.LastIndex(v["PAUSE_IMAGE"], ":")+1:]
	if err != nil || !strings.Contains(out, want) {
		t.Errorf("ctr run %s /pause --version: %v\n%s\nwant %q\ncontainerd log:\n%s", v["PAUSE_IMAGE"], err, out, want, tail(ctrd.log, 4000))
	}
}
