package componenttest

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// versionCase is one applet asked for its version, and what it must print.
type versionCase struct {
	applet string
	args   []string
	want   string
	// exitNonZero: the applet prints its version and exits non-zero (the
	// CNI plugins print their "about" line when CNI_COMMAND is not set).
	exitNonZero bool
}

func versionCases(v versions) []versionCase {
	kube := "Kubernetes " + v["KUBERNETES_VERSION"]
	containerd := "github.com/containerd/containerd/v2 " + v["CONTAINERD_VERSION"]
	cni := func(name string) versionCase {
		return versionCase{applet: name, want: "CNI " + name + " plugin " + v["CNI_PLUGINS_VERSION"], exitNonZero: true}
	}
	return []versionCase{
		{applet: "kube-apiserver", args: []string{"--version"}, want: kube},
		{applet: "kube-controller-manager", args: []string{"--version"}, want: kube},
		{applet: "kube-scheduler", args: []string{"--version"}, want: kube},
		{applet: "kubelet", args: []string{"--version"}, want: kube},
		{applet: "kube-proxy", args: []string{"--version"}, want: kube},
		{applet: "kubectl", args: []string{"version", "--client"}, want: "Client Version: " + v["KUBERNETES_VERSION"]},
		{applet: "kine", args: []string{"--version"}, want: "kine version " + v["KINE_VERSION"]},
		{applet: "etcd", args: []string{"--version"}, want: "etcd Version: " + strings.TrimPrefix(v["ETCD_VERSION"], "v")},
		{applet: "etcdctl", args: []string{"version"}, want: "etcdctl version: " + strings.TrimPrefix(v["ETCD_VERSION"], "v")},
		{applet: "containerd", args: []string{"--version"}, want: "containerd " + containerd},
		{applet: "containerd-shim-runc-v2", args: []string{"-v"}, want: v["CONTAINERD_VERSION"]},
		{applet: "ctr", args: []string{"--version"}, want: "ctr " + containerd},
		cni("bridge"), cni("host-local"), cni("loopback"), cni("portmap"),
		{applet: "flannel", args: []string{"--version"}, want: "flannel " + v["FLANNEL_VERSION"]},
		{applet: "runc", args: []string{"--version"}, want: "runc version " + strings.TrimPrefix(v["RUNC_VERSION"], "v")},
	}
}

func checkVersion(t *testing.T, out string, err error, c versionCase) {
	t.Helper()
	if _, timedOut := err.(*timeoutError); timedOut || (err != nil && !c.exitNonZero) {
		t.Fatalf("%s %s: %v\n%s", c.applet, strings.Join(c.args, " "), err, out)
	}
	if !strings.Contains(out, c.want) {
		t.Errorf("%s %s printed\n%s\nwant it to contain %q", c.applet, strings.Join(c.args, " "), out, c.want)
	}
}

// TestVersions runs every applet of the amd64 tree through its link in
// usr/bin, as the node does, and checks it reports the pinned version.
func TestVersions(t *testing.T) {
	root := tree(t, "amd64")
	for _, c := range versionCases(loadVersions(t)) {
		t.Run(c.applet, func(t *testing.T) {
			out, err := run(t, 2*time.Minute, filepath.Join(root, "usr/bin", c.applet), c.args...)
			checkVersion(t, out, err, c)
		})
	}
}

// podApplets are the applets of cairn-pod, what is exec'd per pod,
// container or volume; every other applet is cairn-node's.
var podApplets = map[string]bool{
	"bridge": true, "host-local": true, "loopback": true, "portmap": true,
	"containerd-shim-runc-v2": true, "mount": true, "umount": true,
}

// holder is the binary an applet's link in usr/bin must point to.
func holder(applet string) string {
	if podApplets[applet] {
		return "cairn-pod"
	}
	return "cairn-node"
}

// TestManifest checks components.json against the tree: every applet has a
// link to the binary that holds it, every listed file exists with the
// listed hash.
func TestManifest(t *testing.T) {
	v := loadVersions(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			root := tree(t, arch)
			m := loadManifest(t, root)
			if m.Arch != arch {
				t.Errorf("components.json says arch %q, want %q", m.Arch, arch)
			}
			listed := map[string]string{}
			for _, c := range m.Components {
				listed[c.Component] = c.Version
				data, err := os.ReadFile(filepath.Join(root, c.Path))
				if err != nil {
					t.Errorf("%s: %v", c.Component, err)
					continue
				}
				sum := sha256.Sum256(data)
				if got := hex.EncodeToString(sum[:]); got != c.SHA256 {
					t.Errorf("%s: %s has sha256 %s, components.json says %s", c.Component, c.Path, got, c.SHA256)
				}
			}
			for _, c := range versionCases(v) {
				if listed[c.applet] == "" {
					t.Errorf("components.json does not list %s", c.applet)
				}
				if c.applet == "runc" {
					continue
				}
				if dest, err := os.Readlink(filepath.Join(root, "usr/bin", c.applet)); err != nil || dest != holder(c.applet) {
					t.Errorf("usr/bin/%s links to %q (%v), want %s", c.applet, dest, err, holder(c.applet))
				}
			}
			for a := range podApplets {
				if dest, err := os.Readlink(filepath.Join(root, "usr/bin", a)); err != nil || dest != "cairn-pod" {
					t.Errorf("usr/bin/%s links to %q (%v), want cairn-pod", a, dest, err)
				}
			}
			for name, key := range map[string]string{"pause": "PAUSE_IMAGE", "coredns": "COREDNS_IMAGE",
				"local-path-provisioner": "LOCAL_PATH_IMAGE", "metrics-server": "METRICS_SERVER_IMAGE"} {
				if listed[name] != v[key] {
					t.Errorf("components.json lists %s %q, want %q", name, listed[name], v[key])
				}
			}

			// Debian's netfilter userland, with versions recorded.
			data, err := os.ReadFile(filepath.Join(root, "usr/share/cairn/debs.json"))
			if err != nil {
				t.Fatalf("debs.json: %v", err)
			}
			var debs struct {
				Packages []struct{ Package, Version, Architecture string }
			}
			if err := json.Unmarshal(data, &debs); err != nil {
				t.Fatalf("debs.json: %v", err)
			}
			have := map[string]bool{}
			for _, p := range debs.Packages {
				have[p.Package] = p.Version != "" && (p.Architecture == arch || p.Architecture == "all")
			}
			for _, want := range []string{"iptables", "nftables", "conntrack", "libc6"} {
				if !have[want] {
					t.Errorf("debs.json lacks %s for %s (or its version)", want, arch)
				}
			}
			for _, bin := range []string{"usr/sbin/iptables", "usr/sbin/ip6tables", "usr/sbin/nft", "usr/sbin/conntrack"} {
				if _, err := os.Stat(filepath.Join(root, bin)); err != nil {
					t.Errorf("%s: %v", bin, err)
				}
			}
		})
	}
}

// TestArm64 checks the arm64 tree holds arm64 executables and runs some of
// them under qemu-aarch64-static (user-mode emulation).
func TestArm64(t *testing.T) {
	root := tree(t, "arm64")
	for _, bin := range []string{"cairn-node", "cairn-pod", "runc"} {
		f, err := elf.Open(filepath.Join(root, "usr/bin", bin))
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
			t.Errorf("%s is %v %v, want an ELFCLASS64 EM_AARCH64 executable", bin, f.Class, f.Machine)
		}
		if interp := f.Section(".interp"); interp != nil {
			t.Errorf("%s has a program interpreter; want a static executable", bin)
		}
		f.Close()
	}
	// CoreDNS's image holds an arm64 executable too.
	img := readImage(t, filepath.Join(root, "usr/share/cairn/images/coredns.tar"))
	if img.config.Architecture != "arm64" {
		t.Errorf("coredns.tar (arm64) says architecture %q", img.config.Architecture)
	}
	coredns := filepath.Join(t.TempDir(), "coredns")
	if err := os.WriteFile(coredns, img.files["coredns"], 0o755); err != nil {
		t.Fatal(err)
	}
	if f, err := elf.Open(coredns); err != nil || f.Machine != elf.EM_AARCH64 || f.Section(".interp") != nil {
		t.Errorf("coredns in the arm64 image is not a static arm64 executable (%v)", err)
	} else {
		f.Close()
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		t.Fatalf("qemu-aarch64-static is needed to run the arm64 binaries: %v; install qemu-user-static (make deps)", err)
	}
	want := map[string]bool{"kubectl": true, "kine": true, "runc": true, "containerd": true, "etcd": true, "flannel": true,
		"loopback": true, "containerd-shim-runc-v2": true}
	for _, c := range versionCases(loadVersions(t)) {
		if !want[c.applet] {
			continue
		}
		t.Run(c.applet, func(t *testing.T) {
			out, err := run(t, 5*time.Minute, qemu, append([]string{filepath.Join(root, "usr/bin", c.applet)}, c.args...)...)
			checkVersion(t, out, err, c)
		})
	}
	out, err := run(t, 5*time.Minute, qemu, coredns, "-version")
	if want := "CoreDNS-" + strings.TrimPrefix(loadVersions(t)["COREDNS_VERSION"], "v"); err != nil || !strings.Contains(out, want) {
		t.Errorf("coredns -version under qemu: %v\n%s\nwant %q", err, out, want)
	}
}

// TestAppletLinks asks each multicall binary for its applets (its usage,
// run with no arguments) and checks that each is a link in usr/bin to the
// binary that holds it, that no applet is in both, and that cairn-pod holds
// exactly what is exec'd per pod.
func TestAppletLinks(t *testing.T) {
	root := tree(t, "amd64")
	held := map[string]string{}
	for _, bin := range []string{"cairn-node", "cairn-pod"} {
		out, err := run(t, time.Minute, filepath.Join(root, "usr/bin", bin))
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Fatalf("%s with no arguments: %v, want exit status 2 and its usage\n%s", bin, err, out)
		}
		_, list, ok := strings.Cut(out, "applets:\n")
		if !ok {
			t.Fatalf("%s's usage lists no applets:\n%s", bin, out)
		}
		for line := range strings.SplitSeq(list, "\n") {
			a, ok := strings.CutPrefix(line, "  ")
			if !ok {
				break
			}
			if other := held[a]; other != "" {
				t.Errorf("%s is an applet of both %s and %s", a, other, bin)
			}
			held[a] = bin
			if dest, err := os.Readlink(filepath.Join(root, "usr/bin", a)); err != nil || dest != bin {
				t.Errorf("usr/bin/%s links to %q (%v), want %s, the binary that holds it", a, dest, err, bin)
			}
		}
	}
	for a, bin := range held {
		if bin != holder(a) {
			t.Errorf("%s is an applet of %s, want %s", a, bin, holder(a))
		}
	}
	for a := range podApplets {
		if held[a] != "cairn-pod" {
			t.Errorf("cairn-pod does not list %s", a)
		}
	}
	for _, c := range versionCases(loadVersions(t)) {
		if c.applet != "runc" && held[c.applet] == "" {
			t.Errorf("neither binary lists %s", c.applet)
		}
	}
}
