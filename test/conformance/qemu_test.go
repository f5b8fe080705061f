package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// -platform qemu -focus-set small is issue 24's smaller QEMU run: one
// server and one agent, Pods, Services, DNS and ConfigMap volumes.
func TestQEMUSmallFocus(t *testing.T) {
	o, err := parseFlags([]string{"-platform", "qemu", "-focus-set", "small"})
	if err != nil {
		t.Fatal(err)
	}
	if o.servers != 1 || o.agents != 1 || o.name != "conformance-qemu" || o.memory != 6144 {
		t.Errorf("servers %d agents %d name %q memory %d, want 1 1 conformance-qemu 6144", o.servers, o.agents, o.name, o.memory)
	}
	if o.runDir() != filepath.Join(o.out, "qemu") {
		t.Errorf("a QEMU run writes its results in %s, want OUT/qemu (its passes are not the full run's)", o.runDir())
	}
	for name, want := range map[string]bool{
		podsTest: true,
		dnsTest:  true,
		"[sig-network] Services should serve a basic endpoint from pods [Conformance]":                                                                  true,
		"[sig-storage] ConfigMap should be consumable from pods in volume with defaultMode set [LinuxOnly] [NodeConformance] [Conformance]":             true,
		"[sig-node] Pods Extended Pods Set QOS Class should be set on Pods with matching resource requests and limits for memory and cpu [Conformance]": true,
		"[sig-node] PodTemplates should delete a collection of pod templates [Conformance]":                                                             false,
		"[sig-storage] Projected configMap should be consumable from pods in volume [NodeConformance] [Conformance]":                                    false,
		"[sig-network] Networking Granular Checks: Pods should function for intra-pod communication: http [NodeConformance] [Conformance]":              false,
		serialTest: false,
	} {
		if got := o.focus.MatchString(name); got != want {
			t.Errorf("the small set takes %q: %v, want %v", name, got, want)
		}
	}
	known := map[string]bool{}
	for _, s := range testImages() {
		known[s.File] = true
	}
	for _, s := range focusSets {
		for _, f := range s.Images {
			if !known[f] {
				t.Errorf("focus set %s names the image %s, which testImages does not build", s.Name, f)
			}
		}
	}

	o, err = parseFlags([]string{"-platform", "qemu", "-servers", "2", "-agents", "0", "-name", "q", "-memory", "4096"})
	if err != nil {
		t.Fatal(err)
	}
	if o.servers != 2 || o.agents != 0 || o.name != "q" || o.memory != 4096 || o.set != nil {
		t.Errorf("given flags not kept: %+v", o)
	}
	if o, err = parseFlags(nil); err != nil || o.servers != 2 || o.agents != 2 || o.name != "conformance" || o.runDir() != o.out {
		t.Errorf("the container platform's defaults changed: %+v, %v", o, err)
	}

	// One agent a VM among native nodes: the first choice.
	o, err = parseFlags([]string{"-qemu-agents", "1", "-focus-set", "small"})
	if err != nil {
		t.Fatal(err)
	}
	if o.servers != 2 || o.agents != 2 || o.qemuAgents != 1 || o.name != "conformance-qemu" || !o.vms() || o.runDir() != filepath.Join(o.out, "qemu") {
		t.Errorf("-qemu-agents 1: %+v, runDir %s; want 2 servers, 2 agents, one a VM, named conformance-qemu, results in OUT/qemu", o, o.runDir())
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-memory", "4096"}, "-memory is each VM's memory"},
		{[]string{"-platform", "vm"}, `-platform "vm": want container or qemu`},
		{[]string{"-platform", "qemu", "-memory", "512"}, "-memory 512: want 2048 to 65536"},
		{[]string{"-focus-set", "small", "-focus", "DNS"}, "give one"},
		{[]string{"-focus-set", "big"}, `-focus-set "big": want one of small (`},
		{[]string{"-qemu-agents", "3"}, "-qemu-agents 3: want 0 to -agents (2)"},
		{[]string{"-platform", "qemu", "-qemu-agents", "1"}, "-qemu-agents is for -platform container"},
	} {
		_, err := parseFlags(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

// The VMs' components tree links the real one's files (no copy of the
// node components per run) and keeps its links and directories.
func TestLinkTree(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "linux-amd64")
	must(t, os.MkdirAll(filepath.Join(src, "usr/share/cairn/images"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "usr/share/cairn/images/pause.tar"), []byte("tar"), 0o644))
	must(t, os.MkdirAll(filepath.Join(src, "usr/bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "usr/bin/kubelet"), []byte("ELF"), 0o755))
	must(t, os.Symlink("usr/lib", filepath.Join(src, "lib")))
	must(t, linkTree(src, dst))
	a, err := os.Stat(filepath.Join(src, "usr/bin/kubelet"))
	must(t, err)
	b, err := os.Stat(filepath.Join(dst, "usr/bin/kubelet"))
	must(t, err)
	if !os.SameFile(a, b) || b.Mode().Perm() != 0o755 {
		t.Errorf("kubelet in the copy: %v, want the same file, mode 0755", b.Mode())
	}
	if l, err := os.Readlink(filepath.Join(dst, "lib")); err != nil || l != "usr/lib" {
		t.Errorf("lib in the copy: %q, %v; want a link to usr/lib", l, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "usr/share/cairn/images/pause.tar")); err != nil {
		t.Error(err)
	}
}

// Why agnhost's nc was busybox's though /bin/nc was OpenBSD's: Debian's
// busybox-static runs its own applet for any name it has, whatever the
// PATH says (through /proc/self/exe, so only where /proc is mounted, as in
// a container). The image checks run the image's own shell that way and
// see it. Needs root (a chroot) and this machine's busybox-static.
func TestImageCheckSeesStandaloneShell(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the checks chroot into the image")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("no /bin/busybox here")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	tree := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(tree, "bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "bin/busybox"), bb, 0o755))
	must(t, os.Symlink("busybox", filepath.Join(tree, "bin/sh")))
	// The image's "OpenBSD netcat", first on the PATH.
	must(t, os.WriteFile(filepath.Join(tree, "bin/nc"), []byte("#!/bin/sh\necho OpenBSD netcat\n"), 0o755))
	applets, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil || !slices.Contains(strings.Fields(string(applets)), "nc") {
		t.Skip("this machine's busybox has no nc applet")
	}
	var logged []string
	b := &builder{log: func(f string, a ...any) { logged = append(logged, f) }}
	spec := imageSpec{File: "t", Checks: []imageCheck{{"echo ok", "ok", "the shell runs"}}, Config: imageConfig{Env: []string{pathEnv}}}
	if err := b.check(t.Context(), tree, spec); err != nil {
		t.Fatalf("a check that must pass: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tree, "proc")); !os.IsNotExist(err) {
		t.Errorf("the check left /proc in the tree (%v): it would be in the image", err)
	}
	spec.Checks = agnhostChecks[:1]
	err = b.check(t.Context(), tree, spec)
	if !isStatic(t, "/bin/busybox") {
		t.Skipf("this machine's busybox is dynamic, not busybox-static (check: %v)", err)
	}
	if err == nil || !strings.Contains(err.Error(), "BusyBox") || !strings.Contains(err.Error(), "want \"OpenBSD netcat\"") {
		t.Errorf("busybox-static's shell with an OpenBSD nc on the PATH: %v, want the check to fail showing busybox's nc", err)
	}
	t.Logf("the check says: %v", err)
}

// isStatic says whether an ELF file has no program interpreter.
func isStatic(t *testing.T, path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		t.Skipf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}
