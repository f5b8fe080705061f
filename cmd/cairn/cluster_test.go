package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/cmd/cairn/internal/cluster"
)

func upOptions() cluster.Options {
	return cluster.Options{Name: "cairn", Servers: 1, Datastore: "postgres", Platform: "container",
		Wait: "node", Timeout: 20 * time.Minute, Memory: 3072, SMP: 2}
}

func TestClusterOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(o *cluster.Options)
		want   string // part of the usage error; "" for none
	}{
		{"defaults", func(o *cluster.Options) {}, ""},
		{"two servers one agent", func(o *cluster.Options) { o.Servers, o.Agents = 2, 1 }, ""},
		{"every datastore", func(o *cluster.Options) { o.Datastore = "mysql" }, ""},
		{"name upper case", func(o *cluster.Options) { o.Name = "Dev" }, `cluster name "Dev"`},
		{"name too long", func(o *cluster.Options) { o.Name = strings.Repeat("a", 21) }, "1-20 lower-case"},
		{"name ends in dash", func(o *cluster.Options) { o.Name = "dev-" }, "not ending with '-'"},
		{"name with slash", func(o *cluster.Options) { o.Name = "../etc" }, "cluster name"},
		{"no servers", func(o *cluster.Options) { o.Servers = 0 }, "--servers 0: want 1 to 7"},
		{"too many servers", func(o *cluster.Options) { o.Servers = 8 }, "--servers 8"},
		{"negative agents", func(o *cluster.Options) { o.Agents = -1 }, "--agents -1"},
		{"too many agents", func(o *cluster.Options) { o.Agents = 21 }, "--agents 21: want 0 to 20"},
		{"unknown datastore", func(o *cluster.Options) { o.Datastore = "sqlite" }, `--datastore "sqlite": want one of postgres, mysql, etcd, embedded`},
		{"embedded with three servers", func(o *cluster.Options) { o.Datastore, o.Servers = "embedded", 3 }, ""},
		{"unknown platform", func(o *cluster.Options) { o.Platform = "docker" }, `--platform "docker"`},
		{"unknown wait", func(o *cluster.Options) { o.Wait = "pods" }, `--wait "pods"`},
		{"timeout too short", func(o *cluster.Options) { o.Timeout = time.Second }, "--timeout 1s"},
		{"unknown board", func(o *cluster.Options) { o.Board = "pdp-11" }, "pdp-11"},
		{"subnet not /24", func(o *cluster.Options) { o.Subnet = "10.0.0.0/16" }, "--subnet"},
		{"subnet not a network", func(o *cluster.Options) { o.Subnet = "10.0.0.5/24" }, "--subnet"},
		{"vip auto", func(o *cluster.Options) { o.VIP = "auto" }, ""},
		{"vip address", func(o *cluster.Options) { o.VIP = "192.168.210.10" }, ""},
		{"vip not an address", func(o *cluster.Options) { o.VIP = "vip.example" }, "--vip"},
		{"vip outside the subnet", func(o *cluster.Options) { o.VIP, o.Subnet = "10.1.1.10", "10.1.2.0/24" }, "is not in --subnet"},
		{"vip on a server's address", func(o *cluster.Options) { o.VIP = "192.168.210.11" }, "the last number is taken"},
		{"vip on this machine's address", func(o *cluster.Options) { o.VIP = "192.168.210.254" }, "the last number is taken"},
		{"memory out of range", func(o *cluster.Options) { o.Memory = -1 }, "--memory"},
		{"archive missing", func(o *cluster.Options) { o.Archives = []string{"/nonexistent/busybox.tar"} }, "--image-archive /nonexistent/busybox.tar"},
		{"archive not a tar", func(o *cluster.Options) { o.Archives = []string{"/etc/hostname"} }, "--image-archive /etc/hostname"},
		{"archive on qemu", func(o *cluster.Options) { o.Platform, o.Archives = "qemu", []string{"x.tar"} }, "works on the container platform"},
		{"one agent a VM", func(o *cluster.Options) { o.Agents, o.QEMUAgents = 2, 1 }, ""},
		{"more VM agents than agents", func(o *cluster.Options) { o.Agents, o.QEMUAgents = 1, 2 }, "--qemu-agents 2: want 0 to --agents (1)"},
		{"VM agents on qemu", func(o *cluster.Options) { o.Platform, o.Agents, o.QEMUAgents = "qemu", 1, 1 }, "the container platform's option"},
		{"VM agents with archives", func(o *cluster.Options) {
			o.Agents, o.QEMUAgents, o.Archives = 1, 1, []string{"/etc/hostname"}
		}, "does not reach the VMs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := upOptions()
			tc.change(&o)
			err := checkClusterUp(&o)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("check: %v", err)
				}
				if o.Board == "" {
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
	o.VIP = "192.168.210.10"
	checkClusterUp(&o)
	if o.Subnet != "192.168.210.0/24" {
		t.Errorf("--vip 192.168.210.10 gives the subnet %q; want its /24", o.Subnet)
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
