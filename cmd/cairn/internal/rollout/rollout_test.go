package rollout

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/cmd/cairn/internal/rollout/rollouttest"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// quick makes following fast and names upgrades after a fixed time.
func quick(t *testing.T) {
	oldPoll, oldNow := pollInterval, now
	pollInterval = time.Millisecond
	now = func() time.Time { return time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC) }
	t.Cleanup(func() { pollInterval, now = oldPoll, oldNow })
}

// open is a client of the apiserver the kubeconfig at kc names.
func open(t *testing.T, kc string) *Kube {
	t.Helper()
	data, err := os.ReadFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kube.ParseKubeconfig(data)
	if err != nil {
		t.Fatal(err)
	}
	return New(admin)
}

// run runs an upgrade of images as `cairn upgrade` does with its default
// flags, changed by edit; it returns what Run printed and its error.
func run(t *testing.T, kc string, images []string, edit func(*Options)) (stdout, stderr string, err error) {
	t.Helper()
	o := Options{Kubeconfig: kc, Images: images, MaxUnavailable: 1,
		DrainTimeout: upgrade.DefaultDrainTimeout, HealthTimeout: upgrade.DefaultHealthTimeout}
	if edit != nil {
		edit(&o)
	}
	var out, errOut strings.Builder
	err = Run(context.Background(), &out, &errOut, open(t, kc), o)
	return out.String(), errOut.String(), err
}

var node = rollouttest.NodeStatus

// TestRunFromDirectory runs an upgrade of a bundle directory against the
// fake: the Upgrade asked for, the files on every server before it
// starts, and the lines while it runs.
func TestRunFromDirectory(t *testing.T) {
	quick(t)
	f, kc := rollouttest.New(t, rollouttest.ThreeNodes...)
	f.Deployments = []string{"default/web"}
	f.Busy = 1
	f.Down = 3
	done := node("s1", upgrade.Succeeded, "01:00", "01:12", "01:21", "03:00", "08:32")
	f.Script = []upgrade.Status{
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{node("s1", upgrade.Draining, "01:00")}},
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{node("s1", upgrade.Draining, "01:00")}},
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{node("s1", upgrade.Writing, "01:00", "01:12")}},
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{done, node("s2", upgrade.Draining, "08:33")}},
		{Phase: upgrade.Succeeded, Nodes: []upgrade.NodeStatus{done,
			node("s2", upgrade.Succeeded, "08:33", "08:40", "08:50", "09:30", "14:00"),
			node("a1", upgrade.Succeeded, "14:01", "14:02", "14:10", "15:00", "21:03")}},
	}
	dir := rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v2")
	stdout, stderr, err := run(t, kc, []string{dir}, func(o *Options) {
		o.DrainTimeout = 5 * time.Minute
		o.Deployments = []string{"default/web"}
	})
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	want := `upgrade: s1: Draining
upgrade: s1: Writing
upgrade: s1: Succeeded (drain 12s, write 9s, reboot+healthy 431s)
upgrade: s2: Draining
upgrade: s2: Succeeded (drain 7s, write 10s, reboot+healthy 310s)
upgrade: a1: Succeeded (drain 1s, write 8s, reboot+healthy 413s)
upgrade upgrade-20261130-100000: Succeeded in 21m3s
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	for _, line := range []string{"cairn upgrade: qemu-x86_64 v2 (amd64) from " + filepath.Join(dir, "update") + ", 3 files",
		"cairn upgrade: created upgrade-20261130-100000 for s1 (at v1), s2 (at v1), a1 (at v1)",
		"cairn upgrade: qemu-x86_64 system.sqfs (29.3 KiB) stored on s2",
		"cairn upgrade: cannot read upgrade-20261130-100000 (the server is shutting down); asking again every 1ms\ncairn upgrade: the apiserver answers again\n"} {
		if !strings.Contains(stderr, line) {
			t.Errorf("stderr lacks %q:\n%s", line, stderr)
		}
	}

	u := f.Only(t)
	s := u.Spec
	if strings.Join(s.Nodes, ",") != "s1,s2,a1" || s.MaxUnavailable != 1 || s.DrainTimeout != "5m0s" || s.HealthTimeout != "15m0s" ||
		len(s.Checks) != 1 || s.Checks[0].Deployment != "default/web" || len(s.Images) != 1 || s.Images[0].Source != "" || s.Images[0].Version != "v2" {
		t.Errorf("the Upgrade's spec is %+v", s)
	}
	for _, server := range []string{"s1", "s2"} {
		for _, bf := range s.Images[0].Files {
			data, err := os.ReadFile(filepath.Join(dir, "update", bf.Name))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Blobs[server+"/"+bf.SHA256]; string(got) != string(data) {
				t.Errorf("%s holds %d bytes of %s, want %d", server, len(got), bf.Name, len(data))
			}
		}
	}
	// Created, then uploaded, then started; the agent gets no file.
	var order []string
	for _, r := range f.Did("") {
		if strings.HasPrefix(r, "POST ") || strings.HasPrefix(r, "PUT ") {
			order = append(order, r)
		}
	}
	sys := s.Images[0].Files[0].SHA256
	if len(order) != 8 || order[0] != "POST "+upgrade.Path("") || order[1] != "PUT /api/v1/nodes/https:s1:6446/proxy/cairn/v1/blobs/"+sys ||
		order[7] != "PUT "+upgrade.Path("upgrade-20261130-100000")+"/status" {
		t.Errorf("requests that write, in order:\n%s", strings.Join(order, "\n"))
	}
}

func TestRunFailed(t *testing.T) {
	quick(t)
	f, kc := rollouttest.New(t, rollouttest.ThreeNodes...)
	bad := node("s1", upgrade.Failed, "01:00", "01:12", "01:21")
	bad.Reason = "kubelet not Ready within 15m0s; booted v1 again"
	f.Script = []upgrade.Status{
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{node("s1", upgrade.Verifying, "01:00", "01:12", "01:21")}},
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{func() upgrade.NodeStatus {
			n := node("s1", upgrade.RollingBack, "01:00", "01:12", "01:21")
			n.Reason = bad.Reason
			return n
		}()}},
		{Phase: upgrade.Failed, Message: "node s1: " + bad.Reason, Nodes: []upgrade.NodeStatus{bad}},
	}
	stdout, _, err := run(t, kc, []string{rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v2")}, func(o *Options) { o.Nodes = []string{"s1", "a1"} })
	want := `upgrade: s1: Verifying
upgrade: s1: RollingBack: kubelet not Ready within 15m0s; booted v1 again
upgrade: s1: Failed: kubelet not Ready within 15m0s; booted v1 again
upgrade upgrade-20261130-100000: Failed: node s1: kubelet not Ready within 15m0s; booted v1 again
`
	if err != ErrReported || stdout != want {
		t.Errorf("error %v, stdout:\n%s\nwant ErrReported and:\n%s", err, stdout, want)
	}
	if n := f.Only(t).Spec.Nodes; strings.Join(n, ",") != "s1,a1" {
		t.Errorf("nodes %q, want s1,a1 as given", n)
	}
}

// TestRunRefusals: what is refused before anything is written to the
// cluster, each with an error that says why.
func TestRunRefusals(t *testing.T) {
	quick(t)
	x86 := rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v2")
	damaged := rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v2")
	if err := os.WriteFile(filepath.Join(damaged, "update", upgrade.KernelFile), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name        string
		running     *upgrade.Upgrade
		nodes       []rollouttest.Node
		images      []string
		pick        []string
		deployments []string
		want        string
	}{
		{name: "one is running", running: &upgrade.Upgrade{Metadata: upgrade.Metadata{Name: "upgrade-20261129-090000"}, Status: upgrade.Status{Phase: upgrade.Running}},
			images: []string{x86}, want: "upgrade upgrade-20261129-090000 is Running; one upgrade at a time"},
		{name: "one never started", running: &upgrade.Upgrade{Metadata: upgrade.Metadata{Name: "upgrade-20261129-090000"}},
			images: []string{x86}, want: "upgrade upgrade-20261129-090000 was never started"},
		{name: "unknown node", images: []string{x86}, pick: []string{"s1", "s9"}, want: "--nodes: the cluster has no node s9 (it has s1, s2, a1)"},
		{name: "two bundles for a board", images: []string{x86, rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v3")}, want: "two bundles for board qemu-x86_64"},
		{name: "no bundle for an arch", nodes: []rollouttest.Node{{Name: "s1", Arch: "amd64", Server: true}, {Name: "a1", Arch: "arm64"}}, images: []string{x86}, want: "node a1 is arm64 and no --image is for arm64"},
		{name: "missing deployment", images: []string{x86}, deployments: []string{"default/web"}, want: "--check-deployment default/web: there is no such Deployment"},
		{name: "damaged bundle", images: []string{damaged}, want: "it is 4 bytes with sha256"},
		{name: "not a bundle", images: []string{t.TempDir()}, want: "no update.json in it or in its update/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			nodes := c.nodes
			if nodes == nil {
				nodes = rollouttest.ThreeNodes
			}
			f, kc := rollouttest.New(t, nodes...)
			if c.running != nil {
				c.running.Metadata.CreationTimestamp = "2026-11-29T09:00:00Z"
				f.Upgrades[c.running.Metadata.Name] = c.running
			}
			_, _, err := run(t, kc, c.images, func(o *Options) { o.Nodes, o.Deployments = c.pick, c.deployments })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v; want one with %q", err, c.want)
			}
			if w := f.Did("POST"); len(w) != 0 {
				t.Errorf("wrote %q", w)
			}
		})
	}
}

// TestRunUploadFails: a server that cannot take the files fails the
// upgrade before it starts, and the Upgrade is removed so the next one may
// run.
func TestRunUploadFails(t *testing.T) {
	quick(t)
	f, kc := rollouttest.New(t, rollouttest.ThreeNodes...)
	f.FailBlobs = true
	_, _, err := run(t, kc, []string{rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v2")}, nil)
	if err == nil || !strings.HasSuffix(err.Error(), "connection refused; upgrade upgrade-20261130-100000 removed, no node was touched") {
		t.Errorf("error %v", err)
	}
	if len(f.Upgrades) != 0 {
		t.Errorf("%d upgrades left", len(f.Upgrades))
	}
}

// TestRunUploadNeedsAnAdmin: the servers take upgrade files from a
// certificate of cairn's admins' group only; a system:masters one (k3s's
// admin kubeconfig) is refused, and nothing is left behind.
func TestRunUploadNeedsAnAdmin(t *testing.T) {
	quick(t)
	f, kc := rollouttest.NewAs(t, []string{"system:masters"}, rollouttest.ThreeNodes...)
	_, _, err := run(t, kc, []string{rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v2")}, nil)
	if err == nil || !strings.Contains(err.Error(), "only an admin uploads upgrade files: the upload's certificate (admin) is not an admin's (cairn:cluster-admins)") {
		t.Errorf("error %v", err)
	}
	if len(f.Upgrades) != 0 || len(f.Blobs) != 0 {
		t.Errorf("%d upgrades and %d files left", len(f.Upgrades), len(f.Blobs))
	}
}

// TestRunStartLost: when the reply to the start is lost but the Upgrade
// runs, it is left running (nodes may be acting on it).
func TestRunStartLost(t *testing.T) {
	quick(t)
	f, kc := rollouttest.New(t, rollouttest.ThreeNodes...)
	f.LoseStart = true
	_, _, err := run(t, kc, []string{rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v2")}, nil)
	if err == nil || !strings.Contains(err.Error(), "request timed out; upgrade upgrade-20261130-100000 was started all the same and goes on: follow it with cairn upgrade status --kubeconfig "+kc+" --follow upgrade-20261130-100000") {
		t.Errorf("error %v", err)
	}
	if u := f.Only(t); u.Status.Phase != upgrade.Running {
		t.Errorf("phase %q, want Running", u.Status.Phase)
	}
}

// TestRunFromURL: a bundle served over HTTP is named by its URL in the
// Upgrade and nothing is uploaded; Detach returns once it runs.
func TestRunFromURL(t *testing.T) {
	quick(t)
	f, kc := rollouttest.New(t, rollouttest.ThreeNodes...)
	dir := rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v2")
	web := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer web.Close()
	stdout, stderr, err := run(t, kc, []string{web.URL}, func(o *Options) { o.Detach = true })
	if err != nil || stdout != "" || !strings.HasSuffix(stderr, "cairn upgrade: upgrade-20261130-100000 is running in the cluster; follow it with: cairn upgrade status --kubeconfig "+kc+" --follow upgrade-20261130-100000\n") {
		t.Fatalf("error %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	u := f.Only(t)
	if src := u.Spec.Images[0].Source; src != web.URL+"/update/" || u.Status.Phase != upgrade.Running {
		t.Errorf("source %q, phase %q; want %s/update/ and Running", src, u.Status.Phase, web.URL)
	}
	if w := f.Did("PUT /api/v1/nodes/"); len(w) != 0 {
		t.Errorf("uploaded %q", w)
	}
}
