package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/qemu/container"
)

func upOptions() clusterOptions {
	return clusterOptions{name: "cairn", servers: 1, datastore: "postgres", platform: "container",
		wait: "node", timeout: 20 * time.Minute, memory: 3072, smp: 2}
}

func TestClusterOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(o *clusterOptions)
		want   string // part of the usage error; "" for none
	}{
		{"defaults", func(o *clusterOptions) {}, ""},
		{"two servers one agent", func(o *clusterOptions) { o.servers, o.agents = 2, 1 }, ""},
		{"every datastore", func(o *clusterOptions) { o.datastore = "mysql" }, ""},
		{"name upper case", func(o *clusterOptions) { o.name = "Dev" }, `cluster name "Dev"`},
		{"name too long", func(o *clusterOptions) { o.name = strings.Repeat("a", 21) }, "1-20 lower-case"},
		{"name ends in dash", func(o *clusterOptions) { o.name = "dev-" }, "not ending with '-'"},
		{"name with slash", func(o *clusterOptions) { o.name = "../etc" }, "cluster name"},
		{"no servers", func(o *clusterOptions) { o.servers = 0 }, "--servers 0: want 1 to 7"},
		{"too many servers", func(o *clusterOptions) { o.servers = 8 }, "--servers 8"},
		{"negative agents", func(o *clusterOptions) { o.agents = -1 }, "--agents -1"},
		{"too many agents", func(o *clusterOptions) { o.agents = 21 }, "--agents 21: want 0 to 20"},
		{"unknown datastore", func(o *clusterOptions) { o.datastore = "sqlite" }, `--datastore "sqlite": want one of postgres, mysql, etcd, embedded`},
		{"embedded with two servers", func(o *clusterOptions) { o.datastore, o.servers = "embedded", 2 }, "takes --servers 1"},
		{"unknown platform", func(o *clusterOptions) { o.platform = "docker" }, `--platform "docker"`},
		{"unknown wait", func(o *clusterOptions) { o.wait = "pods" }, `--wait "pods"`},
		{"timeout too short", func(o *clusterOptions) { o.timeout = time.Second }, "--timeout 1s"},
		{"unknown board", func(o *clusterOptions) { o.board = "pdp-11" }, "pdp-11"},
		{"subnet not /24", func(o *clusterOptions) { o.subnet = "10.0.0.0/16" }, "--subnet"},
		{"subnet not a network", func(o *clusterOptions) { o.subnet = "10.0.0.5/24" }, "--subnet"},
		{"vip auto", func(o *clusterOptions) { o.vip = "auto" }, ""},
		{"vip address", func(o *clusterOptions) { o.vip = "192.168.210.10" }, ""},
		{"vip not an address", func(o *clusterOptions) { o.vip = "vip.example" }, "--vip"},
		{"vip outside the subnet", func(o *clusterOptions) { o.vip, o.subnet = "10.1.1.10", "10.1.2.0/24" }, "is not in --subnet"},
		{"vip on a server's address", func(o *clusterOptions) { o.vip = "192.168.210.11" }, "the last number is taken"},
		{"vip on this machine's address", func(o *clusterOptions) { o.vip = "192.168.210.254" }, "the last number is taken"},
		{"memory out of range", func(o *clusterOptions) { o.memory = -1 }, "--memory"},
		{"archive missing", func(o *clusterOptions) { o.archives = []string{"/nonexistent/busybox.tar"} }, "--image-archive /nonexistent/busybox.tar"},
		{"archive not a tar", func(o *clusterOptions) { o.archives = []string{"/etc/hostname"} }, "--image-archive /etc/hostname"},
		{"archive on qemu", func(o *clusterOptions) { o.platform, o.archives = "qemu", []string{"x.tar"} }, "works on the container platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := upOptions()
			tc.change(&o)
			err := o.check()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("check: %v", err)
				}
				if o.board == "" {
					t.Error("no default board")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check: %v; want an error with %q", err, tc.want)
			}
			if _, ok := err.(usageError); !ok {
				t.Errorf("%v is not a usage error (exit status 2)", err)
			}
		})
	}
	o := upOptions()
	o.vip = "192.168.210.10"
	o.check()
	if o.subnet != "192.168.210.0/24" {
		t.Errorf("--vip 192.168.210.10 gives the subnet %q; want its /24", o.subnet)
	}
}

// TestClusterUpUsage: flag errors exit 2 before anything is made.
func TestClusterUpUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"cluster", "up", "--state-dir", dir, "--servers", "0"},
		{"cluster", "up", "--state-dir", dir, "--datastore", "oracle"},
		{"cluster", "up", "--state-dir", dir, "--name", "A"},
		{"cluster", "down", "--state-dir", dir, "--name", "a/b"},
		{"cluster", "up", "extra"},
		{"cluster"},
		{"cluster", "sideways"},
	} {
		var stdout, stderr bytes.Buffer
		if code := execute(args, strings.NewReader(""), &stdout, &stderr); code != exitUsage {
			t.Errorf("cairn %s: exit %d; want %d\n%s", strings.Join(args, " "), code, exitUsage, stderr.String())
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a usage error left %d entries in the state directory", len(ents))
	}
}

func validState() *clusterState {
	subnet := netip.MustParsePrefix("192.168.200.0/24")
	return &clusterState{
		Version: stateVersion, Name: "dev", Created: time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC),
		Platform: "container", Datastore: "postgres", Board: "qemu-x86_64", Image: "/work/out/qemu-x86_64",
		Network: container.Network{Namespace: "cairn-cluster-dev", Subnet: subnet, BridgeAddr: hostAddr(subnet, 1),
			HostLink: hostLinkOf("dev"), HostAddr: hostAddr(subnet, 254)},
		Store: &storeState{Datastore: container.Datastore{Kind: "postgres", Dir: "/var/lib/cairn-cluster/dev/datastore",
			Addr: hostAddr(subnet, 1), Password: "not-saved", Log: "/var/lib/cairn-cluster/dev/datastore.log"},
			Proc: container.Proc{PID: 100, Start: 5}},
		Nodes: []nodeState{
			{ID: "s1", Name: "dev-s1", Role: "server", Addr: hostAddr(subnet, 11), Proc: container.Proc{PID: 200, Start: 6}, Log: "/x/s1.log"},
			{ID: "a1", Name: "dev-a1", Role: "agent", Addr: hostAddr(subnet, 101), Proc: container.Proc{PID: 300, Start: 7}, Log: "/x/a1.log"},
		},
	}
}

func TestClusterStateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	os.Mkdir(dir, 0o700)
	st := validState()
	if err := st.save(dir); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, stateFile))
	if strings.Contains(string(data), "not-saved") {
		t.Error("cluster.json holds the datastore password")
	}
	if fi, _ := os.Stat(filepath.Join(dir, stateFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("cluster.json has mode %v; want 0600", fi.Mode().Perm())
	}
	got, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Network != st.Network || got.Store.Proc != st.Store.Proc || len(got.Nodes) != 2 || got.Nodes[1] != st.Nodes[1] || !got.Created.Equal(st.Created) {
		t.Errorf("read back %+v; want %+v", got, st)
	}
	// A directory whose name is not the cluster's name is refused.
	other := filepath.Join(filepath.Dir(dir), "other")
	os.Mkdir(other, 0o700)
	st.save(other)
	if _, err := loadState(other); err == nil || !strings.Contains(err.Error(), `holds the cluster "dev"`) {
		t.Errorf("loadState of a renamed directory: %v", err)
	}
}

func TestParseStateRefuses(t *testing.T) {
	good := func() []byte {
		dir := t.TempDir()
		validState().save(dir)
		data, _ := os.ReadFile(filepath.Join(dir, stateFile))
		return data
	}()
	if _, err := parseState(good); err != nil {
		t.Fatalf("the valid state: %v", err)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown field", `"version": 1,`, `"version": 1, "extra": true,`, "unknown field"},
		{"other version", `"version": 1,`, `"version": 2,`, "version 2"},
		{"bad name", `"name": "dev"`, `"name": "../dev"`, "cluster name"},
		{"foreign namespace", `"namespace": "cairn-cluster-dev"`, `"namespace": "cairn-0123abcd"`, "is not the cluster's"},
		{"foreign host link", `"host_link": "` + hostLinkOf("dev") + `"`, `"host_link": "eth0"`, `host link "eth0"`},
		{"bad platform", `"platform": "container"`, `"platform": "lxc"`, `platform "lxc"`},
		{"bad datastore", `"datastore": "postgres"`, `"datastore": "oracle"`, `datastore "oracle"`},
		{"bad node id", `"id": "s1"`, `"id": "x1"`, `node id "x1"`},
		{"node name not the cluster's", `"name": "dev-s1"`, `"name": "prod-s1"`, `is named "prod-s1"`},
		{"wrong role", `"role": "agent"`, `"role": "server"`, `has role "server"`},
		{"negative pid", `"pid": 200`, `"pid": -1`, "process id -1"},
		{"not an address", `"addr": "192.168.200.11"`, `"addr": "nowhere"`, "nowhere"},
		{"trailing data", "}\n", "}\n{}", "data after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := strings.Replace(string(good), tc.old, tc.new, 1)
			if tc.name == "trailing data" {
				data = strings.TrimRight(string(good), "\n") + "\n{}"
			}
			if data == string(good) {
				t.Fatalf("%q is not in the state", tc.old)
			}
			_, err := parseState([]byte(data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseState: %v; want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := parseState(make([]byte, maxStateSize+1)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a state over the limit: %v", err)
	}
	dup := strings.Replace(string(good), `"id": "a1"`, `"id": "s1"`, 1)
	if _, err := parseState([]byte(dup)); err == nil {
		t.Error("two nodes with one id were accepted")
	}
}

func TestNodeConfigs(t *testing.T) {
	st := validState()
	st.VIP = hostAddr(st.Network.Subnet, vipHost)
	cfgs, err := nodeConfigs(st, "tok-s3cret", "postgres://postgres:pw@192.168.200.1:5432/kine?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	s1, a1 := string(cfgs["s1"]), string(cfgs["a1"])
	for _, want := range []string{"hostname: dev-s1", "addresses: [192.168.200.11/24]", "role: server", "datastore-endpoint:", "vip: 192.168.200.10"} {
		if !strings.Contains(s1, want) {
			t.Errorf("s1's config lacks %q:\n%s", want, s1)
		}
	}
	for _, want := range []string{"hostname: dev-a1", "role: agent", "server: https://192.168.200.10:6443"} {
		if !strings.Contains(a1, want) {
			t.Errorf("a1's config lacks %q:\n%s", want, a1)
		}
	}
	if strings.Contains(a1, "datastore-endpoint") {
		t.Error("the agent is given the datastore")
	}
}

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

func TestClusterListEmpty(t *testing.T) {
	var out bytes.Buffer
	if err := clusterList(&out, filepath.Join(t.TempDir(), "none")); err != nil || out.String() != "no clusters\n" {
		t.Errorf("list of no state directory: %q, %v", out.String(), err)
	}
	dir := t.TempDir()
	d := filepath.Join(dir, "dev")
	os.Mkdir(d, 0o700)
	validState().save(d)
	out.Reset()
	if err := clusterList(&out, dir); err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"dev: container, postgres datastore, 192.168.200.0/24, not ready", "dev-s1 server 192.168.200.11 stopped (was pid 200)", "dev-a1 agent", "postgres datastore"} {
		if !strings.Contains(flat, want) {
			t.Errorf("list lacks %q:\n%s", want, out.String())
		}
	}
}

func TestListNodes(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"items": [
			{"metadata": {"name": "dev-s1"}, "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True", "reason": "KubeletReady"}]}},
			{"metadata": {"name": "dev-a1"}, "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "cni plugin not initialized"}]}},
			{"metadata": {"name": "dev-a2"}, "status": {}}]}`)
	}))
	defer srv.Close()
	got, err := listNodes(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]nodeCondition{
		"dev-s1": {Status: "True", Reason: "KubeletReady"},
		"dev-a1": {Status: "False", Reason: "KubeletNotReady", Message: "cni plugin not initialized"},
		"dev-a2": {Status: "Unknown", Reason: "NoReadyCondition", Message: "the kubelet has not reported"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("listNodes = %v; want %v", got, want)
	}
	if _, err := listNodes(context.Background(), srv.Client(), srv.URL+"/nowhere"); err == nil {
		t.Error("a 404 gave no error")
	}
}

func TestReadyzAndErrorWords(t *testing.T) {
	body := []byte("[+]ping ok\n[+]etcd ok\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n[-]etcd-readiness failed: reason withheld\nreadyz check failed\n")
	if got := failedChecks(body); got != "failing: poststarthook/rbac/bootstrap-roles, etcd-readiness" {
		t.Errorf("failedChecks = %q", got)
	}
	if got := failedChecks([]byte("Unauthorized\nmore")); got != "Unauthorized" {
		t.Errorf("failedChecks without checks = %q", got)
	}
	err := fmt.Errorf("reaching 10.0.0.1:6443: %w", fmt.Errorf("dial tcp 10.0.0.1:6443: %w", errors.New("connect: connection refused")))
	if got := shortErr(err); got != "connection refused" {
		t.Errorf("shortErr = %q", got)
	}
}
