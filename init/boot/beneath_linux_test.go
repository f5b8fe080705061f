package boot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config/layout"
)

// TestOpenBeneath: a node directory's file is opened only inside it,
// through no link, and only with the type asked for; each refusal names
// the file.
func TestOpenBeneath(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(t.TempDir(), "shadow")
	os.WriteFile(host, []byte("host secret\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, "state/cairn"), 0o755)
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("#cloud-config\n"), 0o600)
	os.Symlink(host, filepath.Join(dir, "link.yaml"))
	os.Symlink(filepath.Dir(host), filepath.Join(dir, "linkdir"))
	os.Symlink("state", filepath.Join(dir, "inside"))
	unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tc := range []struct {
		rel  string
		want fileType
		err  string // "" when it opens
	}{
		{"state/cairn", directory, ""},
		{"config.yaml", regularFile, ""},
		{"config.yaml", directory, "the node directory: config.yaml is not a directory; refusing it: make it a directory"},
		{"state", regularFile, "the node directory: state is not a regular file; refusing it"},
		{"link.yaml", regularFile, "the node directory: link.yaml is a symbolic link, or its path crosses one; refusing it: the host follows no link in a node directory"},
		{"linkdir/shadow", regularFile, "linkdir/shadow is a symbolic link, or its path crosses one"},
		{"inside/cairn", directory, "inside/cairn is a symbolic link, or its path crosses one"},
		{"../" + filepath.Base(dir) + "/config.yaml", regularFile, "leads out of it; refusing it"},
		{"fifo", regularFile, "the node directory: fifo is not a regular file"},
		{"missing.yaml", regularFile, "the node directory: missing.yaml: file does not exist"},
	} {
		f, err := openBeneath(d, "the node directory", tc.rel, tc.want)
		if f != nil {
			f.Close()
		}
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s as %s: %v; want %q", tc.rel, tc.want, err, tc.err)
		}
	}
	if _, err := openBeneath(d, "the node directory", "missing.yaml", regularFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v; want os.ErrNotExist", err)
	}
}

// TestMkdirInRoot: the places a node directory's parts are bound over are
// made in the root being assembled, its links resolved inside it as they
// will be once it is the root: a system image whose /var links to a host
// path makes nothing on the host.
func TestMkdirInRoot(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	os.Symlink(outside, filepath.Join(root, "var"))
	os.MkdirAll(filepath.Join(root, outside), 0o755)
	os.Symlink("../../../../../cairn", filepath.Join(root, "etc"))
	os.Symlink(outside+"/usr", filepath.Join(root, "usr"))
	r, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := mkdirBeneath(r, "the image", "/var/lib/kubelet", inRoot)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	os.MkdirAll(filepath.Join(root, "cairn"), 0o755)
	f, err := fileInRoot(r, "the image", layout.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, p := range []string{outside + "/lib/kubelet", "cairn/cairn/config.yaml"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("not made inside the root: %v", err)
		}
	}
	if _, err := mkdirBeneath(r, "the image", layout.ImagesDir, inRoot); err == nil || err.Error() != "the image: usr is a symbolic link to nothing inside it; refusing it" {
		t.Errorf("a link to nothing inside the root: %v; want a refusal naming usr", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) > 0 {
		t.Errorf("made %v on the host, in %s", ents, outside)
	}
	if _, err := mkdirBeneath(r, "the node directory", "var/lib", noLinks); err == nil || !strings.Contains(err.Error(), "var is a symbolic link") {
		t.Errorf("a node directory's link: %v; want a refusal naming var", err)
	}
}

// bindDiskEnv runs TestBindDiskChild as bindDisk's child.
const bindDiskEnv = "CAIRN_TEST_BIND_DISK"

// TestBindDisk binds node directories into roots, each in a child process
// of its own mount namespace: a node directory's links, and parts of the
// wrong type, stop the boot with a line naming them; a good one is bound
// as the node sees it; a system image's links make nothing on the host.
func TestBindDisk(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("binding needs root")
	}
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "shadow"), []byte("host secret\n"), 0o600)
	good := func(t *testing.T, disk, root string) {
		os.MkdirAll(filepath.Join(disk, "state"), 0o755)
		os.WriteFile(filepath.Join(disk, "config.yaml"), []byte("#cloud-config\nhostname: n1\n"), 0o600)
		os.MkdirAll(filepath.Join(disk, "images"), 0o755)
		os.WriteFile(filepath.Join(disk, "images/app.tar"), []byte("app archive"), 0o644)
		os.WriteFile(filepath.Join(disk, "images/notes.txt"), nil, 0o644)
		os.MkdirAll(filepath.Join(root, "etc/cairn"), 0o755)
		os.WriteFile(filepath.Join(root, "etc/cairn/config.yaml"), []byte("baked in\n"), 0o600)
		os.MkdirAll(filepath.Join(root, "run"), 0o755)
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, disk, root string)
		want  []string // the child's lines, or its error
	}{
		{"a node directory", good, []string{
			"config: #cloud-config\\nhostname: n1\\n",
			"config write: read-only file system",
			"app.tar: app archive",
			"notes.txt: no",
			"state: in the node directory",
			"disk: config.yaml",
		}},
		{"STATE's directory a link to a host directory (or its root)", func(t *testing.T, disk, root string) {
			good(t, disk, root)
			os.Symlink(host, filepath.Join(disk, "state/cairn"))
		}, []string{"error: the node directory DISK: state/cairn is a symbolic link, or its path crosses one; refusing it: the host follows no link in a node directory"}},
		{"STATE a link", func(t *testing.T, disk, root string) {
			good(t, disk, root)
			os.Remove(filepath.Join(disk, "state"))
			os.Symlink(host, filepath.Join(disk, "state"))
		}, []string{"error: the node directory DISK: state is a symbolic link, or its path crosses one"}},
		{"the config a link to a host file", func(t *testing.T, disk, root string) {
			good(t, disk, root)
			os.Remove(filepath.Join(disk, "config.yaml"))
			os.Symlink(filepath.Join(host, "shadow"), filepath.Join(disk, "config.yaml"))
		}, []string{"error: the node directory DISK: config.yaml is a symbolic link, or its path crosses one"}},
		{"the config a directory", func(t *testing.T, disk, root string) {
			good(t, disk, root)
			os.Remove(filepath.Join(disk, "config.yaml"))
			os.Mkdir(filepath.Join(disk, "config.yaml"), 0o755)
		}, []string{"error: the node directory DISK: config.yaml is not a regular file; refusing it: make it a regular file"}},
		{"an archive a link", func(t *testing.T, disk, root string) {
			good(t, disk, root)
			os.Symlink(filepath.Join(host, "shadow"), filepath.Join(disk, "images/shadow.tar"))
		}, []string{"error: the node directory DISK: images/shadow.tar is a symbolic link, or its path crosses one"}},
		{"the images directory a link", func(t *testing.T, disk, root string) {
			good(t, disk, root)
			os.RemoveAll(filepath.Join(disk, "images"))
			os.Symlink(host, filepath.Join(disk, "images"))
		}, []string{"error: the node directory DISK: images is a symbolic link, or its path crosses one"}},
		{"the system image's /var a link to a host path", func(t *testing.T, disk, root string) {
			good(t, disk, root)
			os.Symlink(host, filepath.Join(root, "var"))
			os.MkdirAll(filepath.Join(root, host), 0o755)
		}, []string{"state: in the node directory", "host: untouched"}},
		{"the system image's /usr a link to a missing host path", func(t *testing.T, disk, root string) {
			good(t, disk, root)
			os.Symlink(host+"/usr", filepath.Join(root, "usr"))
		}, []string{"error: the image: usr is a symbolic link to nothing inside it; refusing it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk, root := t.TempDir(), t.TempDir()
			tc.setup(t, disk, root)
			cmd := exec.Command(os.Args[0], "-test.run=^TestBindDiskChild$")
			cmd.Env = append(os.Environ(), bindDiskEnv+"="+strings.Join([]string{disk, root, host}, "|"))
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the child: %v\n%s", err, out)
			}
			lines := strings.Split(string(out), "\n")
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "DISK", disk)
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) }) {
					t.Errorf("the child does not say %q; it says:\n%s", w, out)
				}
			}
			if data, _ := os.ReadFile(filepath.Join(host, "shadow")); string(data) != "host secret\n" {
				t.Errorf("the host's file holds %q", data)
			}
			if ents, _ := os.ReadDir(host); len(ents) != 1 {
				t.Errorf("the host's directory holds %d files, want 1", len(ents))
			}
		})
	}
}

// TestContainerRootSlot: the node writes its slot files; a slot that is
// a link (to the host's root, say) or no regular file stops the boot
// before anything is mounted, with a line naming it.
func TestContainerRootSlot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the container platform needs root")
	}
	for _, tc := range []struct {
		name  string
		setup func(slot string)
		want  string
	}{
		{"a link to the host's root", func(slot string) { os.Symlink("/", slot) },
			"error: slot A's system image: the node directory DISK: slot-a.sqfs is a symbolic link, or its path crosses one; refusing it: the host follows no link in a node directory"},
		{"a directory", func(slot string) { os.Mkdir(slot, 0o755) },
			"error: slot A's system image: the node directory DISK: slot-a.sqfs is not a regular file; refusing it: make it a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk, staging := t.TempDir(), t.TempDir()
			tc.setup(filepath.Join(disk, layout.ContainerSlot("a")))
			cmd := exec.Command(os.Args[0], "-test.run=^TestBindDiskChild$")
			cmd.Env = append(os.Environ(), bindDiskEnv+"="+strings.Join([]string{disk, staging, "", "root"}, "|"))
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
			out, err := cmd.CombinedOutput()
			if want := strings.ReplaceAll(tc.want, "DISK", disk); err != nil || !strings.HasPrefix(string(out), want+"\n") {
				t.Errorf("the child (%v) says:\n%s\nwant %q", err, out, want)
			}
		})
	}
}

// TestBindDiskChild is TestBindDisk's and TestContainerRootSlot's child,
// in a mount namespace of its own: it binds (or starts ContainerRoot),
// then says what the root shows, one line each.
func TestBindDiskChild(t *testing.T) {
	env := os.Getenv(bindDiskEnv)
	if env == "" {
		t.Skip("TestBindDisk's child")
	}
	args := append(strings.Split(env, "|"), "", "", "")
	disk, root, host := args[0], args[1], args[2]
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	say := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	if args[3] == "root" { // TestContainerRootSlot's: root is the staging directory
		err := ContainerRoot{Disk: disk, Slot: "a", Staging: root}.Run()
		say("error: %v", err)
		return
	}
	d, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	if err := bindDisk(d, nodeDirName(disk), root, "the image"); err != nil {
		say("error: %v", err)
		return
	}
	// The root as the node will see it: through its fd, links inside it.
	r, _ := os.Open(root)
	read := func(p string) string {
		f, err := openat2(r, p, unix.O_RDONLY, inRoot)
		if err != nil {
			return "no"
		}
		defer f.Close()
		data, _ := os.ReadFile(fdPath(f))
		return strings.ReplaceAll(string(data), "\n", `\n`)
	}
	say("config: %s", read(layout.ConfigFile))
	if f, err := openat2(r, layout.ConfigFile, unix.O_WRONLY, inRoot); err != nil {
		say("config write: %v", err)
	} else {
		f.Close()
		say("config write: allowed")
	}
	say("app.tar: %s", read(layout.ImagesDir+"/app.tar"))
	say("notes.txt: %s", read(layout.ImagesDir+"/notes.txt"))
	if f, err := openat2(r, layout.StateDir+"/probe", unix.O_CREAT|unix.O_WRONLY, inRoot); err == nil {
		f.Close()
		if _, err := os.Stat(filepath.Join(disk, "state/cairn/probe")); err == nil {
			say("state: in the node directory")
		}
	}
	if read(layout.ContainerDiskMount+"/config.yaml") != "no" {
		say("disk: config.yaml")
	}
	if ents, _ := os.ReadDir(host); len(ents) == 1 {
		say("host: untouched")
	}
}
