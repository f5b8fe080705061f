package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/cairn-os/cairn/image/debdeps"
)

// The suite names its images through test/utils/image/manifest.go: a
// registry key, a name and a tag each. KUBE_TEST_REPO_LIST (a YAML file
// with one line per key) replaces the registries; these are the local
// names every image here is built and imported under, so a test image can
// only come from this machine (nothing answers for cairn.local). The
// invalid registry stays what it is: the tests that use it expect a pull
// to fail.
var localRegistries = []struct{ Key, Local string }{
	{"promoterE2eRegistry", "cairn.local/e2e-test-images"},
	{"buildImageRegistry", "cairn.local/build-image"},
	{"gcEtcdRegistry", "cairn.local"},
	{"gcRegistry", "cairn.local"},
	{"sigStorageRegistry", "cairn.local/sig-storage"},
	{"privateRegistry", "cairn.local/k8s-authenticated-test"},
	{"dockerLibraryRegistry", "cairn.local/library"},
	{"cloudProviderGcpRegistry", "cairn.local/cloud-provider-gcp"},
	{"invalidRegistry", "invalid.registry.k8s.io/invalid"},
}

// repoList is the KUBE_TEST_REPO_LIST file's text.
func repoList() string {
	var b strings.Builder
	b.WriteString("# KUBE_TEST_REPO_LIST for cairn's conformance run (test/conformance): every\n")
	b.WriteString("# test image under a local name, imported into each node at boot.\n")
	for _, r := range localRegistries {
		fmt.Fprintf(&b, "%s: %s\n", r.Key, r.Local)
	}
	return b.String()
}

func localRegistry(key string) string {
	for _, r := range localRegistries {
		if r.Key == key {
			return r.Local
		}
	}
	panic("no registry key " + key) // the table below names only keys above
}

// imageSpec says how one test image is made here: a root tree from
// Debian packages (with their dependency closure), busybox's applets, Go
// programs built from the pinned modules, and files from the
// k8s.io/kubernetes module; then the image's config.
type imageSpec struct {
	File     string // the archive's name under OUT/images, without .tar
	Registry string // the manifest.go registry key
	Name     string // the manifest.go name
	Tag      string // the manifest.go tag
	Upstream string // what upstream builds it from, for docs and errors
	Debs     []string
	// Busybox links busybox's applets in /bin, those no Debian package
	// put on the PATH: all of them in the busybox image (as upstream's),
	// the rest of an Alpine-like base in agnhost's and nginx's. Which
	// busybox is in Debs matters: busybox-static's shell is built
	// standalone, it runs its own applet for every name it has whatever
	// the PATH holds, so an image whose Debian tools share a name with
	// an applet (nc, ip, nslookup) takes Debian's dynamic busybox.
	Busybox bool
	// SourceBusybox puts at /bin/busybox one built from Debian's source
	// package with ash's upstream handling of the environment
	// (busybox.go), instead of a package's.
	SourceBusybox bool
	// Checks are run in the finished tree by its own /bin/sh, as a test's
	// `kubectl exec POD -- /bin/sh -c CMD` runs them (only as root).
	Checks []imageCheck
	Go     []goProgram
	Files  []kubeFile        // from the k8s.io/kubernetes module
	Write  map[string]string // path -> contents (mode 0644)
	Dirs   map[string]os.FileMode
	Links  map[string]string // path -> target
	Users  bool              // agnhost's users and groups (uid 1000, gid 50000)
	Config imageConfig       // Names and Arch are filled in
}

// goProgram is a main package built into the image (CGO_ENABLED=0).
type goProgram struct {
	Pkg     string
	Module  string // "build" (test/conformance/build) or "components" (image/components)
	Path    string // in the image
	Mode    os.FileMode
	Ldflags string
}

// kubeFile is a file of the k8s.io/kubernetes module put into an image.
type kubeFile struct{ From, To string }

const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// agnhostDebs are the tools agnhost's image carries (upstream: Alpine's
// bind-tools, curl, netcat-openbsd, iproute2, bash, util-linux-misc;
// busybox for the rest): dig and nslookup for the DNS tests, getent,
// curl and nc for the node-to-pod checks, ip and ss. The busybox is
// Debian's dynamic one, built like Alpine's without the standalone
// shell: busybox-static's sh ran its own nc (no -v, no -u) for the
// suite's `sh -c "nc -v -t -w 2 HOST PORT"` though /bin/nc was OpenBSD's.
var agnhostDebs = []string{"bash", "libc-bin", "bind9-dnsutils", "curl", "netcat-openbsd", "iproute2", "busybox"}

// agnhostChecks are what the suite's commands in agnhost containers need
// from the tools they name through sh (framework/service/jig.go,
// framework/network/utils.go, network/hostport.go, network/dns_common.go,
// apps/daemon_set.go).
var agnhostChecks = []imageCheck{
	{"nc -h 2>&1", "OpenBSD netcat", "Services and Networking run `nc -v -t -w 2`, `nc -v -u -w 2` and `nc -u -w 1`, which busybox's nc refuses"},
	{"ip -V 2>&1", "iproute2", "iproute2's ip, as upstream's image carries"},
	{"nslookup -version 2>&1", "nslookup 9.", "the ExternalName Services tests run nslookup (upstream: bind-tools')"},
	{"dig -v 2>&1", "DiG 9.", "the DNS probers run dig"},
	{"curl --version 2>&1", "curl ", "Services, hostport, lifecycle hooks and session affinity run curl"},
	{`[[ "$(echo ok)" == "ok" ]] && echo yes`, "yes", "DaemonSet's readiness probe runs [[ ]] in sh"},
}

// shellKeepsEnv checks that sh passes on environment variables whose
// names are not shell names: the suite's envFrom tests (ConfigMap and
// Secret "consumable via the environment", "with various prefixes") run
// `sh -c env` and look for data-1=value-1. Debian's busybox ash (static
// and dynamic, 1.35 and 1.37) and dash leave such variables out of what
// they export; bash passes them on, as the suite's own images' shells do.
// So agnhost's images take bash for /bin/sh, and the busybox image, whose
// ash's messages a test also reads, a busybox built to keep them
// (busybox.go).
// The inner shell is named by its path: busybox-static's env runs its own
// sh applet for a bare "sh", whatever /bin/sh is.
var shellKeepsEnv = imageCheck{"env data-1=value-1 /bin/sh -c env", "data-1=value-1",
	"the envFrom tests run `sh -c env` with variables named data-1, which busybox's ash and dash drop"}

// ashReadOnly checks the message of the shell for a write to a read-only
// file system: the read-only root filesystem test wants ash's exact words.
// A tmpfs mounted read-only over the check's own /proc stands for the root.
var ashReadOnly = imageCheck{"mount -t tmpfs -o ro tmpfs /proc && echo test > /proc/file", "/bin/sh: can't create /proc/file: Read-only file system\n",
	"the read-only root filesystem test wants `/bin/sh: can't create /file: Read-only file system`, ash's message"}

// agnhost is agnhost's image, or one built on it; version is what the
// binary says it is (agnhost --version).
func agnhost(file, tag, version string, extra ...kubeFile) imageSpec {
	return imageSpec{
		File: file, Registry: "promoterE2eRegistry", Name: "agnhost", Tag: tag,
		Upstream: "test/images/agnhost on Alpine 3.21",
		Debs:     agnhostDebs,
		Busybox:  true,
		Go: []goProgram{{Pkg: "k8s.io/kubernetes/test/images/agnhost", Module: "build", Path: "/agnhost", Mode: 0o755,
			Ldflags: "-X main.Version=" + version}},
		Files: append([]kubeFile{
			{"test/images/agnhost/porter/localhost.crt", "/localhost.crt"},
			{"test/images/agnhost/porter/localhost.key", "/localhost.key"},
		}, extra...),
		Dirs:   map[string]os.FileMode{"/uploads": 0o755},
		Links:  map[string]string{"/agnhost-2": "agnhost", "/bin/sh": "bash"},
		Users:  true,
		Checks: append([]imageCheck{shellKeepsEnv}, agnhostChecks...),
		Config: imageConfig{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{pathEnv}, WorkingDir: "/"},
	}
}

// testImages are the images the [Conformance] tests of v1.36 run (see
// docs/conformance.md for which test uses which). kitten (the image
// volume test's, pulled with policy Always and checked to be Alpine) is
// not among them: that test is an allowed skip.
func testImages() []imageSpec {
	// 2.55 is the same program under its own version: an image of its
	// own (another ID), as the tests that change a pod's image expect.
	prev := agnhost("agnhost-prev", "2.55", "2.55")
	nautilus := agnhost("nautilus", "1.8", "2.63.0",
		kubeFile{"test/images/nautilus/html/nautilus.jpg", "/nautilus.jpg"},
		kubeFile{"test/images/nautilus/html/data.json", "/data.json"})
	nautilus.Name, nautilus.Upstream = "nautilus", "agnhost 2.63.0 with test/images/nautilus/html"
	nautilus.Config.Cmd = []string{"test-webserver"}
	return []imageSpec{
		agnhost("agnhost", "2.63.0", "2.63.0"),
		prev,
		nautilus,
		{
			File: "busybox", Registry: "promoterE2eRegistry", Name: "busybox", Tag: "1.37.0-1",
			Upstream: "Docker's busybox:1.37.0",
			// busybox-static's applets, its ash keeping the environment
			// (shellKeepsEnv, busybox.go).
			SourceBusybox: true,
			Busybox:       true,
			Checks: []imageCheck{
				shellKeepsEnv,
				ashReadOnly,
				{"wget --help 2>&1", "--post-data", "the PreStop test's hook runs wget --post-data"},
				{`[[ "$(echo ok)" == "ok" ]] && echo yes`, "yes", "the Downward API test runs [[ ]] in sh"},
				{"sysctl kernel/ostype", "kernel.ostype = Linux", "the Sysctls tests read kernel/shm_rmid_forced and expect the dotted name"},
			},
			Config: imageConfig{Cmd: []string{"sh"}, Env: []string{pathEnv}},
		},
		{
			File: "pause", Registry: "gcRegistry", Name: "pause", Tag: "3.10.2",
			Upstream: "registry.k8s.io/pause (C); cairn's image/components/cmd/pause, as the nodes' sandbox image",
			Go:       []goProgram{{Pkg: "./cmd/pause", Module: "components", Path: "/pause", Mode: 0o755, Ldflags: "-X main.version=3.10.2"}},
			Config:   imageConfig{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		},
		{
			File: "nginx", Registry: "promoterE2eRegistry", Name: "nginx", Tag: "1.15-4",
			Upstream: "Docker's nginx:1.27-alpine",
			Debs:     []string{"nginx-light", "busybox"},
			Busybox:  true, // sh and sleep: pre_stop.go's hook runs them
			Write:    map[string]string{"/etc/nginx/nginx.conf": nginxConf},
			Dirs:     map[string]os.FileMode{"/var/lib/nginx": 0o755, "/var/log/nginx": 0o755, "/run": 0o755},
			Config:   imageConfig{Cmd: []string{"nginx", "-g", "daemon off;"}, Env: []string{pathEnv}},
		},
		{
			File: "glibc-dns-testing", Registry: "promoterE2eRegistry", Name: "glibc-dns-testing", Tag: "2.0.0",
			Upstream: "debian:bookworm-slim with dnsutils",
			Debs:     []string{"base-files", "dash", "bash", "coreutils", "hostname", "mawk", "grep", "sed", "findutils", "libc-bin", "dnsutils"},
			Links:    map[string]string{"/bin/sh": "dash", "/usr/bin/awk": "mawk"},
			Checks: []imageCheck{
				{"dig -v 2>&1", "DiG 9.", "the DNS prober runs dig"},
				{"for i in `seq 1 2`; do echo n$i; done", "n2", "the DNS prober loops over seq in dash"},
			},
			Config: imageConfig{Cmd: []string{"bash"}, Env: []string{pathEnv}},
		},
		{
			File: "nonewprivs", Registry: "promoterE2eRegistry", Name: "nonewprivs", Tag: "1.4",
			Upstream: "test/images/nonewprivs (setuid nnp) on Alpine 3.22",
			Go:       []goProgram{{Pkg: "k8s.io/kubernetes/test/images/nonewprivs", Module: "build", Path: "/usr/local/bin/nnp", Mode: 0o755 | os.ModeSetuid}},
			Config:   imageConfig{Cmd: []string{"nnp"}, Env: []string{pathEnv}},
		},
		{
			File: "sample-apiserver", Registry: "promoterE2eRegistry", Name: "sample-apiserver", Tag: "1.29.2",
			Upstream: "k8s.io/sample-apiserver v0.33.7; here the pinned v0.36.3 (the module's replace), same API group",
			Go:       []goProgram{{Pkg: "k8s.io/sample-apiserver", Module: "build", Path: "/sample-apiserver", Mode: 0o755}},
			Config:   imageConfig{Entrypoint: []string{"/sample-apiserver"}, WorkingDir: "/"},
		},
		{
			File: "etcd", Registry: "gcEtcdRegistry", Name: "etcd", Tag: "3.6.8-0",
			Upstream: "etcd v3.6.8 (distroless); here go.etcd.io/etcd/server/v3 v3.6.8, Kubernetes 1.36's own pin",
			Go:       []goProgram{{Pkg: "go.etcd.io/etcd/server/v3", Module: "build", Path: "/usr/local/bin/etcd", Mode: 0o755}},
			Config:   imageConfig{Cmd: []string{"/usr/local/bin/etcd"}, Env: []string{pathEnv}, WorkingDir: "/var/lib/etcd"},
			Dirs:     map[string]os.FileMode{"/var/lib/etcd": 0o700},
		},
	}
}

// ref is the image's local reference (what the suite asks for once
// KUBE_TEST_REPO_LIST is read).
func (s imageSpec) ref() string {
	return localRegistry(s.Registry) + "/" + s.Name + ":" + s.Tag
}

// nginxConf replaces Debian's: no sites, the error log on stderr, the
// workers as nobody (the upstream image's workers run as nginx).
const nginxConf = `user nobody nogroup;
worker_processes 1;
error_log /dev/stderr;
pid /run/nginx.pid;
events { worker_connections 256; }
http {
	access_log /dev/stdout;
	include /etc/nginx/mime.types;
	server {
		listen 80;
		listen [::]:80;
		root /usr/share/nginx/html;
	}
}
`

const (
	basePasswd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	baseGroup  = "root:x:0:\nnogroup:x:65534:\n"
	// agnhost's Dockerfile adds these for the supplemental groups tests.
	agnhostPasswd = "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"
	agnhostGroup  = "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"
	nsswitch      = "passwd: files\ngroup: files\nhosts: files dns\n"
)

// builder holds what building the images needs.
type builder struct {
	repo    string // the cairn repository
	out     string // OUT: images/, debs/, work/
	arch    string
	kubeDir string // the k8s.io/kubernetes module's directory
	aptDir  string // apt's lists
	log     func(format string, args ...any)
}

// buildImages builds each spec into OUT/images/FILE.tar and returns the
// archives' paths.
func (b *builder) buildImages(ctx context.Context, specs []imageSpec) ([]string, error) {
	if b.arch != runtime.GOARCH {
		return nil, fmt.Errorf("the test images are built for this machine's architecture (%s), the container platform's; asked for %s", runtime.GOARCH, b.arch)
	}
	var ix *debdeps.Index
	var paths []string
	for _, s := range specs {
		if len(s.Debs) > 0 && ix == nil {
			var err error
			if ix, err = debdeps.LoadAptLists(b.aptDir, b.arch); err != nil {
				return nil, fmt.Errorf("reading apt's lists for the test images' Debian packages: %w (run apt-get update)", err)
			}
		}
		p, err := b.buildImage(ctx, ix, s)
		if err != nil {
			return nil, fmt.Errorf("image %s (%s): %w", s.ref(), s.Upstream, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func (b *builder) buildImage(ctx context.Context, ix *debdeps.Index, s imageSpec) (string, error) {
	// "_work": the go command never walks a directory named so (a tree of
	// Debian files inside the module once broke go mod tidy).
	tree := filepath.Join(b.out, "_work", "image-"+s.File)
	if err := os.RemoveAll(tree); err != nil {
		return "", err
	}
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(tree)
	if len(s.Debs) > 0 {
		pkgs, err := ix.Resolve(s.Debs)
		if err != nil {
			return "", err
		}
		debs, err := debdeps.Download(ctx, pkgs, b.arch, filepath.Join(b.out, "debs", b.arch))
		if err != nil {
			return "", err
		}
		m, err := debdeps.Extract(debs, tree, debdeps.ExtractOptions{})
		if err != nil {
			return "", err
		}
		names := make([]string, 0, len(m.Packages))
		for _, p := range m.Packages {
			names = append(names, p.Package+"="+p.Version)
		}
		b.log("image %s: %d Debian packages (%s)", s.File, len(names), strings.Join(names, " "))
	}
	if s.SourceBusybox {
		bin, err := b.busyboxBinary(ctx)
		if err != nil {
			return "", err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return "", err
		}
		if err := writeIn(tree, "/bin/busybox", data, 0o755); err != nil {
			return "", err
		}
	}
	for _, g := range s.Go {
		if err := b.buildGo(ctx, g, filepath.Join(tree, g.Path)); err != nil {
			return "", err
		}
	}
	for _, f := range s.Files {
		data, err := os.ReadFile(filepath.Join(b.kubeDir, f.From))
		if err != nil {
			return "", err
		}
		if err := writeIn(tree, f.To, data, 0o644); err != nil {
			return "", err
		}
	}
	for p, text := range s.Write {
		if err := writeIn(tree, p, []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	dirs := map[string]os.FileMode{"/tmp": 0o777 | os.ModeSticky, "/root": 0o700, "/etc": 0o755}
	for p, m := range s.Dirs {
		dirs[p] = m
	}
	for p, m := range dirs {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(full, 0o755); err != nil {
			return "", err
		}
		if err := os.Chmod(full, m); err != nil {
			return "", err
		}
	}
	passwd, group := basePasswd, baseGroup
	if s.Users {
		passwd, group = passwd+agnhostPasswd, group+agnhostGroup
	}
	for p, text := range map[string]string{"/etc/passwd": passwd, "/etc/group": group, "/etc/nsswitch.conf": nsswitch} {
		if err := writeIn(tree, p, []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	if err := alternatives(tree); err != nil {
		return "", err
	}
	if s.Busybox {
		if err := busyboxLinks(tree); err != nil {
			return "", err
		}
	}
	for p, target := range s.Links {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		_ = os.Remove(full)
		if err := os.Symlink(target, full); err != nil {
			return "", err
		}
	}
	if err := b.check(ctx, tree, s); err != nil {
		return "", err
	}
	cfg := s.Config
	cfg.Names = []string{s.ref()}
	cfg.Arch = b.arch
	out := filepath.Join(b.out, "images", "conformance-"+s.File+".tar")
	if err := writeImageArchive(tree, cfg, out); err != nil {
		return "", err
	}
	if fi, err := os.Stat(out); err == nil {
		b.log("image %s: %s (%d MiB)", s.ref(), out, fi.Size()>>20)
	}
	return out, nil
}

// buildGo builds a main package for the image's architecture.
func (b *builder) buildGo(ctx context.Context, g goProgram, dest string) error {
	dir := filepath.Join(b.repo, "test/conformance/build")
	if g.Module == "components" {
		dir = filepath.Join(b.repo, "image/components")
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", strings.TrimSpace("-s -w -buildid= "+g.Ldflags), "-o", dest, g.Pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+b.arch, "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (in %s): %v\n%s", g.Pkg, dir, err, out)
	}
	return os.Chmod(dest, g.Mode)
}

// debianAlternatives are the links Debian's maintainer scripts make with
// update-alternatives, which unpacking a package does not run: without
// them busybox's applet takes the name (its nc has no -v, and the suite's
// Service checks run `nc -v -t -w 2 HOST PORT`). The link alone is not
// enough: the shell that runs the command must look the name up on the
// PATH (agnhostDebs).
var debianAlternatives = map[string]string{"bin/nc": "nc.openbsd"}

// alternatives makes each of debianAlternatives whose target the image
// holds and whose name is free.
func alternatives(tree string) error {
	for name, target := range debianAlternatives {
		link := filepath.Join(tree, name)
		if _, err := os.Stat(filepath.Join(filepath.Dir(link), target)); err != nil {
			continue
		}
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	return nil
}

// busyboxLinks links in /bin each of busybox's applets that no file on
// the image's PATH provides (a Debian package's binary wins).
func busyboxLinks(tree string) error {
	bb := filepath.Join(tree, "bin/busybox")
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", bb, err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		present := false
		for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin"} {
			if _, err := os.Lstat(filepath.Join(tree, d, a)); err == nil {
				present = true
				break
			}
		}
		if present {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(tree, "bin", a)); err != nil {
			return err
		}
	}
	return nil
}

// writeIn writes a file at an absolute image path inside tree.
func writeIn(tree, p string, data []byte, mode os.FileMode) error {
	full := filepath.Join(tree, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	_ = os.Remove(full)
	return os.WriteFile(full, data, mode)
}

// imageCheck is a command an image's own /bin/sh runs at build time, as a
// test's `kubectl exec POD -- /bin/sh -c CMD` would, and what its output
// (stdout and stderr) must contain.
type imageCheck struct{ Cmd, Want, Why string }

// check runs the spec's checks in the finished tree: a chroot in new
// mount and PID namespaces with its own /proc (busybox-static's shell
// runs its applets through /proc/self/exe, so without /proc it would
// fall back to the PATH and hide the very difference a check is for).
// It needs root; otherwise it says so and checks nothing.
func (b *builder) check(ctx context.Context, tree string, s imageSpec) error {
	if len(s.Checks) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		b.log("image %s: %d checks not run (they chroot into the image: run as root)", s.File, len(s.Checks))
		return nil
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		b.log("image %s: %d checks not run (no unshare on the PATH: util-linux)", s.File, len(s.Checks))
		return nil
	}
	proc := filepath.Join(tree, "proc")
	if _, err := os.Lstat(proc); os.IsNotExist(err) {
		if err := os.Mkdir(proc, 0o555); err != nil {
			return err
		}
		defer os.Remove(proc)
	}
	for _, c := range s.Checks {
		out, err := runInTree(ctx, unshare, tree, s.Config.Env, c.Cmd)
		if !strings.Contains(out, c.Want) {
			return fmt.Errorf("check in the image: sh -c %q printed %q (%v), want %q: %s", c.Cmd, clip(out, 300), err, c.Want, c.Why)
		}
	}
	b.log("image %s: %d checks passed", s.File, len(s.Checks))
	return nil
}

// runInTree runs `/bin/sh -c cmd` chrooted in tree with the image's
// environment, for at most 20 seconds, and returns what it printed
// (at most 64 KiB).
func runInTree(ctx context.Context, unshare, tree string, env []string, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, unshare, "--mount", "--pid", "--fork", "--mount-proc="+filepath.Join(tree, "proc"),
		"chroot", tree, "/bin/sh", "-c", cmd)
	c.Env = env
	if len(env) == 0 {
		c.Env = []string{pathEnv}
	}
	var out limitedBuffer
	out.max = 64 << 10
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	return out.b.String(), err
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   strings.Builder
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
