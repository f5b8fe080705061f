package cluster

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/qemu/container"
)

func validState() *state {
	subnet := netip.MustParsePrefix("192.168.200.0/24")
	return &state{
		Version: stateVersion, Name: "dev", Created: time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC),
		Platform: "container", Datastore: "postgres", Board: "qemu-x86_64", Image: "/work/out/qemu-x86_64",
		Network: container.Network{Namespace: "cairn-cluster-dev", Subnet: subnet, BridgeAddr: hostAddr(subnet, 1),
			HostLink: hostLinkOf("dev"), HostAddr: hostAddr(subnet, 254)},
		Store: &storeState{Datastore: container.Datastore{Kind: "postgres", Dir: "/var/lib/cairn-cluster/dev/datastore",
			Addr: hostAddr(subnet, 1), Password: "not-saved", Log: "/var/lib/cairn-cluster/dev/datastore.log"},
			Proc: container.Proc{PID: 100, Start: 5}},
		Nodes: []nodeState{
			{ID: "s1", Name: "dev-s1", Role: "server", Addr: hostAddr(subnet, 11), Proc: container.Proc{PID: 200, Start: 6}, Log: "/x/s1.log"},
			{ID: "a1", Name: "dev-a1", Role: "agent", Addr: hostAddr(subnet, 101), Proc: container.Proc{PID: 300, Start: 7}, Log: "/x/a1.log", Platform: "qemu"},
		},
	}
}

func TestStateRoundTrip(t *testing.T) {
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
		{"unknown node platform", `"platform": "qemu"`, `"platform": "lxc"`, `node a1: platform "lxc"`},
		{"VM agent of a VM cluster", `"platform": "container"`, `"platform": "qemu"`, `node a1: platform "qemu"`},
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

func TestCheckVIPHost(t *testing.T) {
	for _, tc := range []struct {
		host byte
		free bool
	}{
		{1, false}, {2, true}, {10, true}, {11, false}, {17, false}, {18, true},
		{100, true}, {101, false}, {120, false}, {121, true}, {253, true}, {254, false}, {255, false},
	} {
		err := CheckVIPHost(netip.AddrFrom4([4]byte{192, 168, 200, tc.host}))
		if (err == nil) != tc.free {
			t.Errorf("CheckVIPHost(.%d) = %v; want free %v", tc.host, err, tc.free)
		}
	}
}

func TestPlatformOf(t *testing.T) {
	st := validState()
	if got := st.platformOf(&st.Nodes[0]); got != "container" {
		t.Errorf("s1 runs on %q; want the cluster's, container", got)
	}
	if got := st.platformOf(&st.Nodes[1]); got != "qemu" {
		t.Errorf("a1 runs on %q; want qemu", got)
	}
}
