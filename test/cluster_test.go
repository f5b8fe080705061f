//go:build qemu

package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterCLI runs `cairn cluster ARGS...` from the repository's root (the
// image build finds ./init, out/ there) and returns its exit status,
// standard output and standard error.
func clusterCLI(t *testing.T, stateDir string, args ...string) (int, string, string) {
	t.Helper()
	argv := append([]string{"cluster"}, args...)
	argv = append(argv, "--state-dir", stateDir)
	cmd := exec.Command(cairn(t), argv...)
	cmd.Dir = repoRoot()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("cairn %s: %v", strings.Join(argv, " "), err)
	}
	return code, stdout.String(), stderr.String()
}

// clusterRecord is what the test reads of cluster.json.
type clusterRecord struct {
	Network struct {
		Namespace string `json:"namespace"`
		HostLink  string `json:"host_link"`
	} `json:"network"`
	Store *struct {
		Proc struct{ PID int } `json:"proc"`
	} `json:"store"`
	Nodes []struct {
		Name string            `json:"name"`
		Proc struct{ PID int } `json:"proc"`
	} `json:"nodes"`
}

// procStart is a process's start time (field 22 of /proc/PID/stat), or ""
// when it is gone.
func procStart(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 || f[0] == "Z" {
		return ""
	}
	return f[19]
}

// descendants are pid and every process under it, by their start times.
func descendants(pid int) map[int]string {
	parent := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			parent[pp] = append(parent[pp], p)
		}
	}
	out := map[int]string{}
	var walk func(int)
	walk = func(p int) {
		if st := procStart(p); st != "" {
			out[p] = st
		}
		for _, c := range parent[p] {
			walk(c)
		}
	}
	walk(pid)
	return out
}

// TestClusterUpDown is `cairn cluster` as a user runs it: two servers and
// an agent on PostgreSQL on the container platform become Ready, the
// kubeconfig on the last line of the output works from this machine
// (kubectl lists the three nodes Ready), a second `up` with the same name
// is refused and makes nothing, `list` shows the cluster, and `down`
// leaves no process, network namespace, link, mount or file behind.
func TestClusterUpDown(t *testing.T) {
	comps := filepath.Dir(componentsDir(t))
	board := ""
	for _, ab := range archBoards {
		if ab.arch == runtime.GOARCH {
			board = ab.board
		}
	}
	img := image(t, board, "-components", comps)
	state, err := os.MkdirTemp("/var/tmp", "cairn-cluster-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(state, 0o755) // the datastore's user walks through it
	t.Cleanup(func() { os.RemoveAll(state) })
	name := fmt.Sprintf("e2e%d", os.Getpid()%100000)
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(state, name)); err == nil {
			clusterCLI(t, state, "down", "--name", name)
		}
	})

	began := time.Now()
	code, stdout, stderr := clusterCLI(t, state, "up", "--name", name, "--servers", "2", "--agents", "1", "--datastore", "postgres",
		"--platform", "container", "--timeout", "15m", "--image", img)
	t.Logf("cairn cluster up:\n%s", stderr)
	if code != 0 {
		// The consoles go with the cluster at cleanup: keep them.
		logs, _ := filepath.Glob(filepath.Join(state, name, "nodes", "*", "console.log"))
		for _, l := range logs {
			if data, err := os.ReadFile(l); err == nil {
				os.WriteFile(filepath.Join(logDir(t), t.Name()+"-"+filepath.Base(filepath.Dir(l))+".log"), data, 0o644)
			}
		}
		t.Fatalf("cairn cluster up: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("figures: cairn cluster up --servers 2 --agents 1 --datastore postgres --platform container to every node Ready: %.1fs (image built before)", time.Since(began).Seconds())
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	kubeconfig := lines[len(lines)-1]
	if kubeconfig != filepath.Join(state, name, "kubeconfig") {
		t.Errorf("the last line of the output is %q; want the kubeconfig's path", kubeconfig)
	}
	nodeNames := []string{name + "-s1", name + "-s2", name + "-a1"}
	for _, n := range nodeNames {
		if !strings.Contains(stderr, "node "+n+": ready (") {
			t.Errorf("no progress line saying %s is ready", n)
		}
	}

	// The kubeconfig works from this machine, through its veth.
	kubectl := filepath.Join(componentsDir(t), "usr/bin/cairn-node")
	out, err := exec.Command(kubectl, "kubectl", "--kubeconfig", kubeconfig, "get", "nodes", "--no-headers").CombinedOutput()
	if err != nil {
		t.Errorf("kubectl get nodes with %s: %v: %s", kubeconfig, err, out)
	}
	ready := map[string]string{}
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			ready[f[0]] = f[1]
		}
	}
	for _, n := range nodeNames {
		if ready[n] != "Ready" {
			t.Errorf("kubectl get nodes: %s is %q; want Ready:\n%s", n, ready[n], out)
		}
	}

	data, err := os.ReadFile(filepath.Join(state, name, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec clusterRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	procs := map[int]string{}
	for _, n := range rec.Nodes {
		for p, st := range descendants(n.Proc.PID) {
			procs[p] = st
		}
	}
	if rec.Store != nil {
		for p, st := range descendants(rec.Store.Proc.PID) {
			procs[p] = st
		}
	}
	if len(procs) < 5 {
		t.Errorf("only %d processes under the nodes and the datastore; want the launchers, the inits and their services", len(procs))
	}
	netnsBefore := namespacesOf(rec.Network.Namespace)
	if len(netnsBefore) != 4 {
		t.Errorf("network namespaces of the cluster: %v; want the bridge's and one per node", netnsBefore)
	}

	// The images a node carries (here the add-ons') are imported pinned:
	// containerd's CRI reports them so and the kubelet's image garbage
	// collection never removes them, however full the disk (a node has
	// no registry to pull them from again).
	t.Run("images pinned", func(t *testing.T) {
		for _, n := range rec.Nodes {
			if n.Name != name+"-a1" {
				continue
			}
			pid := strconv.Itoa(initUnder(t, n.Name, n.Proc.PID))
			cmd := exec.Command("nsenter", "--target", pid, "--mount", "--net", "--root", "--wd",
				"/usr/bin/ctr", "--address", "/run/containerd/containerd.sock", "--namespace", "k8s.io", "images", "ls")
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("ctr images ls on %s: %v: %s", n.Name, err, out)
			}
			named := 0
			for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
				ref := strings.Fields(l + " -")[0]
				if ref == "REF" || strings.HasPrefix(ref, "sha256:") {
					continue
				}
				named++
				if !strings.Contains(l, "io.cri-containerd.pinned=pinned") {
					t.Errorf("%s: image %s is not pinned: the kubelet's image GC may remove it:\n%s", n.Name, ref, l)
				}
			}
			if named < 2 || !strings.Contains(string(out), "coredns") {
				t.Errorf("%s: want the pause and the add-ons' images (CoreDNS among them) in containerd:\n%s", n.Name, out)
			}
		}
	})

	t.Run("up twice", func(t *testing.T) {
		code, stdout, stderr := clusterCLI(t, state, "up", "--name", name, "--image", img)
		if code != 1 || !strings.Contains(stderr, "a cluster named "+name+" exists already") || stdout != "" {
			t.Errorf("a second up: exit %d, stdout %q, stderr %q; want 1 and the cluster named", code, stdout, stderr)
		}
		if got := namespacesOf(rec.Network.Namespace); len(got) != len(netnsBefore) {
			t.Errorf("a second up changed the namespaces: %v", got)
		}
	})

	t.Run("list", func(t *testing.T) {
		code, stdout, stderr := clusterCLI(t, state, "list")
		flat := strings.Join(strings.Fields(stdout), " ")
		for _, want := range []string{name + ": container, postgres datastore", "ready since", name + "-s1 server", name + "-s2 server", name + "-a1 agent", "postgres datastore"} {
			if code != 0 || !strings.Contains(flat, want) {
				t.Errorf("list (exit %d) lacks %q:\n%s%s", code, want, stdout, stderr)
			}
		}
		if strings.Count(stdout, "running (pid") != 4 {
			t.Errorf("list does not show four running processes:\n%s", stdout)
		}
	})

	began = time.Now()
	code, _, stderr = clusterCLI(t, state, "down", "--name", name)
	t.Logf("cairn cluster down:\n%s", stderr)
	if code != 0 {
		t.Fatalf("cairn cluster down: exit %d", code)
	}
	t.Logf("figures: cairn cluster down of two servers, an agent and PostgreSQL: %.1fs", time.Since(began).Seconds())
	for p, st := range procs {
		if procStart(p) == st {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
			t.Errorf("process %d (%s) is still running", p, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
	if got := namespacesOf(rec.Network.Namespace); len(got) != 0 {
		t.Errorf("network namespaces left: %v", got)
	}
	if _, err := net.InterfaceByName(rec.Network.HostLink); err == nil {
		t.Errorf("the host's link %s is left", rec.Network.HostLink)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for l := range strings.SplitSeq(string(mounts), "\n") {
		if strings.Contains(l, rec.Network.Namespace) || strings.Contains(l, filepath.Join(state, name)) {
			t.Errorf("a mount is left: %s", l)
		}
	}
	if _, err := os.Stat(filepath.Join(state, name)); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory is left: %v", err)
	}
	if code, stdout, _ := clusterCLI(t, state, "list"); code != 0 || strings.TrimSpace(stdout) != "no clusters" {
		t.Errorf("list after down: exit %d: %q", code, stdout)
	}
	if code, _, stderr := clusterCLI(t, state, "down", "--name", name); code != 1 || !strings.Contains(stderr, "no cluster named "+name) {
		t.Errorf("down of a cluster that is gone: exit %d, %q", code, stderr)
	}
}

// namespacesOf are the network namespaces named ns or ns.NODE.
func namespacesOf(ns string) []string {
	var out []string
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if e.Name() == ns || strings.HasPrefix(e.Name(), ns+".") {
			out = append(out, e.Name())
		}
	}
	return out
}
