package boot

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-os/cairn/config"
)

func TestSysctlPath(t *testing.T) {
	for key, want := range map[string]string{
		"net.ipv4.ip_forward":                "/r/proc/sys/net/ipv4/ip_forward",
		"net/ipv4/conf/eth0.10/forwarding":   "/r/proc/sys/net/ipv4/conf/eth0.10/forwarding",
		"kernel.pid_max":                     "/r/proc/sys/kernel/pid_max",
		"../../etc/passwd":                   "/r/proc/sys/etc/passwd",
		"net.bridge.bridge-nf-call-iptables": "/r/proc/sys/net/bridge/bridge-nf-call-iptables",
	} {
		if got := SysctlPath("/r", key); got != want {
			t.Errorf("SysctlPath(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestApplySysctls(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc/sys/net/ipv4"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/sys/net/ipv4/ip_forward"), []byte("0\n"), 0o644)
	err := ApplySysctls(root, map[string]string{"net.ipv4.ip_forward": "1", "no.such.key": "1"})
	if got, _ := os.ReadFile(filepath.Join(root, "proc/sys/net/ipv4/ip_forward")); string(got) != "1\n" {
		t.Errorf("ip_forward holds %q, want 1", got)
	}
	if err == nil || !strings.Contains(err.Error(), `sysctl no.such.key = "1"`) {
		t.Errorf("error %v should name the sysctl that failed", err)
	}
}

func TestWriteFiles(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("changing owners needs root")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/false\nkube:x:1001:1002::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nkube:x:1002:\nadm:x:4:\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "var"), 0o755)
	os.WriteFile(filepath.Join(root, "var/log.txt"), []byte("old\n"), 0o644)

	for _, tc := range []struct {
		name     string
		file     config.WriteFile
		want     string
		mode     os.FileMode
		uid, gid uint32
		err      string
	}{
		{"text default", config.WriteFile{Path: "/etc/a.conf", Content: "x=1\n"}, "x=1\n", 0o644, 0, 0, ""},
		{"b64 with mode", config.WriteFile{Path: "/etc/secret", Content: "c2VjcmV0", Encoding: "b64", Permissions: "0600"}, "secret", 0o600, 0, 0, ""},
		{"gz+b64", config.WriteFile{Path: "/etc/gz", Content: "H4sIAAAAAAAA/8pIzcnJBwQAAP//hqYQNgUAAAA=", Encoding: "gz+b64"}, "hello", 0o644, 0, 0, ""},
		{"owner by name", config.WriteFile{Path: "/home/kube/cfg", Content: "k", Owner: "kube"}, "k", 0o644, 1001, 1002, ""},
		{"owner user:group", config.WriteFile{Path: "/etc/b", Content: "b", Owner: "kube:adm", Permissions: "640"}, "b", 0o640, 1001, 4, ""},
		{"numeric owner", config.WriteFile{Path: "/etc/n", Content: "n", Owner: "7:8"}, "n", 0o644, 7, 8, ""},
		{"append", config.WriteFile{Path: "/var/log.txt", Content: "new\n", Append: true}, "old\nnew\n", 0o644, 0, 0, ""},
		{"unknown user", config.WriteFile{Path: "/etc/u", Content: "u", Owner: "nobody"}, "", 0, 0, 0, `owner "nobody": "nobody" is not in`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteFiles(root, []config.WriteFile{tc.file})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.file.Path) {
					t.Fatalf("error %v, want one naming %s and containing %q", err, tc.file.Path, tc.err)
				}
				if _, err := os.Stat(filepath.Join(root, tc.file.Path)); err == nil {
					t.Errorf("%s was written despite the error", tc.file.Path)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(root, tc.file.Path)
			got, _ := os.ReadFile(p)
			st, _ := os.Stat(p)
			sys := st.Sys().(*syscall.Stat_t)
			if string(got) != tc.want || st.Mode().Perm() != tc.mode || sys.Uid != tc.uid || sys.Gid != tc.gid {
				t.Errorf("%s: %q %v %d:%d, want %q %v %d:%d", tc.file.Path, got, st.Mode().Perm(), sys.Uid, sys.Gid, tc.want, tc.mode, tc.uid, tc.gid)
			}
			// Atomic: no temporary file stays behind.
			ents, _ := os.ReadDir(filepath.Dir(p))
			for _, e := range ents {
				if strings.Contains(e.Name(), ".cairn-") {
					t.Errorf("temporary file %s left behind", e.Name())
				}
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		"/proc":              "/proc",
		`/mnt/with\040space`: "/mnt/with space",
		`/a\011tab\134x`:     "/a\ttab\\x",
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
