package componenttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLocalPathHelper takes /usr/bin/local-path-helper out of each arch's
// local-path-provisioner.tar, where the local-storage add-on's helper pods
// run it: it is there beside the provisioner (still the entrypoint), it is
// listed in components.json with the image, and the amd64 one reports the
// pinned provisioner version and makes and removes a volume directory with
// the provisioner's arguments.
func TestLocalPathHelper(t *testing.T) {
	v := loadVersions(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			root := tree(t, arch)
			archive := filepath.Join(root, "usr/share/cairn/images/local-path-provisioner.tar")
			img := readImage(t, archive)
			if ep := img.config.Config.Entrypoint; len(ep) != 1 || ep[0] != "/usr/bin/local-path-provisioner" {
				t.Errorf("entrypoint %q, want [/usr/bin/local-path-provisioner]", ep)
			}
			listed := ""
			for _, c := range loadManifest(t, root).Components {
				if c.Component == "local-path-helper" {
					listed = c.Version + " in " + c.Path
				}
			}
			if want := v["LOCAL_PATH_IMAGE"] + " in usr/share/cairn/images/local-path-provisioner.tar"; listed != want {
				t.Errorf("components.json lists local-path-helper as %q, want %q", listed, want)
			}
			bin := img.extract(t, "usr/bin/local-path-helper", t.TempDir())
			if arch != "amd64" {
				return
			}
			out, err := run(t, time.Minute, bin, "--version")
			if want := "local-path-helper (cairn) version " + v["LOCAL_PATH_VERSION"]; err != nil || strings.TrimSpace(out) != want {
				t.Errorf("local-path-helper --version: %v %q, want %q", err, out, want)
			}
			vol := filepath.Join(t.TempDir(), "pvc-1_default_data-0")
			if out, err := run(t, time.Minute, bin, "-p", vol, "-s", "1024", "-m", "Filesystem", "-a", "create"); err != nil {
				t.Fatalf("create: %v\n%s", err, out)
			}
			if st, err := os.Stat(vol); err != nil || st.Mode().Perm() != 0o777 {
				t.Fatalf("after create: %v %v; want a directory, mode 0777", st, err)
			}
			os.WriteFile(filepath.Join(vol, "data"), []byte("x"), 0o600)
			if out, err := run(t, time.Minute, bin, "-p", vol, "-s", "1024", "-m", "Filesystem", "-a", "delete"); err != nil {
				t.Fatalf("delete: %v\n%s", err, out)
			}
			if _, err := os.Lstat(vol); !os.IsNotExist(err) {
				t.Errorf("%s is still there after delete: %v", vol, err)
			}
		})
	}
}
