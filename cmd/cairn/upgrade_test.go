package main

import (
	"strings"
	"testing"

	"github.com/cairn-os/cairn/cmd/cairn/internal/rollout/rollouttest"
	"github.com/cairn-os/cairn/config/upgrade"
)

// TestUpgradeUsage: flags that make no upgrade are usage errors (exit
// status 2), refused before the cluster is asked.
func TestUpgradeUsage(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	bundle := rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v2")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"upgrade", "--kubeconfig", "kc"}, "cairn upgrade: --image is required"},
		{[]string{"upgrade", "--kubeconfig", "kc", "-i", bundle, "--max-unavailable", "0"}, "cairn upgrade: --max-unavailable 0: give 1 or more"},
		{[]string{"upgrade", "--kubeconfig", "kc", "-i", bundle, "--health-timeout", "0s"}, "cairn upgrade: --drain-timeout and --health-timeout must be positive"},
		{[]string{"upgrade", "--kubeconfig", "kc", "-i", bundle, "--check-deployment", "web"}, `cairn upgrade: --check-deployment "web" is not NAMESPACE/NAME`},
		{[]string{"upgrade", "--kubeconfig", "kc", "-i", bundle, "--nodes", "s1,s1"}, `cairn upgrade: --nodes names "s1" twice or is empty`},
		{[]string{"upgrade", "-i", bundle}, "cairn upgrade: --kubeconfig is required (or set $KUBECONFIG)"},
		{[]string{"upgrade", "status"}, "cairn upgrade status: --kubeconfig is required (or set $KUBECONFIG)"},
	} {
		code, stdout, stderr := runCairn(t, "", c.args...)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, c.want) || !strings.Contains(stderr, "Run 'cairn upgrade") {
			t.Errorf("cairn %s: exit status %d, stdout %q, stderr %q; want 2 and %q", strings.Join(c.args, " "), code, stdout, stderr, c.want)
		}
	}
}

// TestUpgradeCommand: every flag reaches the Upgrade, an upgrade that
// succeeds exits 0 and one refused exits 1 with why.
func TestUpgradeCommand(t *testing.T) {
	f, kc := rollouttest.New(t, rollouttest.ThreeNodes...)
	f.Deployments = []string{"default/web"}
	f.Script = []upgrade.Status{{Phase: upgrade.Succeeded, Nodes: []upgrade.NodeStatus{
		rollouttest.NodeStatus("s1", upgrade.Succeeded, "01:00", "01:12", "01:21", "03:00", "08:32"),
		rollouttest.NodeStatus("a1", upgrade.Succeeded, "08:33", "08:40", "08:50", "09:30", "14:00")}}}
	bundle := rollouttest.WriteBundle(t, "qemu-x86_64", "amd64", "v2")
	code, stdout, stderr := runCairn(t, "", "upgrade", "--kubeconfig", kc, "-i", bundle, "--nodes", "s1,a1", "--max-unavailable", "2",
		"--drain-timeout", "5m", "--health-timeout", "7m", "--check-deployment", "default/web")
	u := f.Only(t)
	want := `upgrade: s1: Succeeded (drain 12s, write 9s, reboot+healthy 431s)
upgrade: a1: Succeeded (drain 7s, write 10s, reboot+healthy 310s)
upgrade ` + u.Metadata.Name + `: Succeeded in 14m0s
`
	if code != 0 || stdout != want {
		t.Errorf("exit status %d, stdout:\n%s\nstderr:\n%s\nwant 0 and:\n%s", code, stdout, stderr, want)
	}
	s := u.Spec
	if strings.Join(s.Nodes, ",") != "s1,a1" || s.MaxUnavailable != 2 || s.DrainTimeout != "5m0s" || s.HealthTimeout != "7m0s" ||
		len(s.Checks) != 1 || s.Checks[0].Deployment != "default/web" || len(s.Images) != 1 || s.Images[0].Version != "v2" {
		t.Errorf("the Upgrade's spec is %+v", s)
	}

	code, _, stderr = runCairn(t, "", "upgrade", "--kubeconfig", kc, "-i", bundle, "--nodes", "s9")
	if want := "\ncairn upgrade: --nodes: the cluster has no node s9 (it has s1, s2, a1)\n"; code != 1 || !strings.HasSuffix(stderr, want) {
		t.Errorf("a refusal: exit status %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

// TestUpgradeStatusCommand: the upgrade NAME names or the newest, from the
// kubeconfig of $KUBECONFIG; --follow exits 1 when the upgrade fails.
func TestUpgradeStatusCommand(t *testing.T) {
	f, kc := rollouttest.New(t, rollouttest.ThreeNodes...)
	t.Setenv("KUBECONFIG", kc)
	if code, stdout, _ := runCairn(t, "", "upgrade", "status"); code != 0 || stdout != "no upgrade in the cluster (namespace cairn-system)\n" {
		t.Errorf("no upgrade: exit status %d, stdout %q", code, stdout)
	}
	code, _, stderr := runCairn(t, "", "upgrade", "status", "upgrade-nope")
	if want := "cairn upgrade status: no such upgrade: no upgrade upgrade-nope in namespace cairn-system ('cairn upgrade status' shows the newest)\n"; code != 1 || stderr != want {
		t.Errorf("status of a missing upgrade: exit status %d, stderr %q; want 1 and %q", code, stderr, want)
	}

	f.Upgrades["upgrade-20261130-100000"] = &upgrade.Upgrade{
		Metadata: upgrade.Metadata{Name: "upgrade-20261130-100000", CreationTimestamp: "2026-11-30T10:00:00Z"},
		Spec:     upgrade.Spec{Nodes: []string{"s1"}, MaxUnavailable: 1},
		Status:   upgrade.Status{Phase: upgrade.Running},
	}
	bad := rollouttest.NodeStatus("s1", upgrade.Failed, "01:00", "01:12", "01:21")
	bad.Reason = "kubelet not Ready within 15m0s; booted v1 again"
	f.Script = []upgrade.Status{{Phase: upgrade.Failed, Message: "node s1: " + bad.Reason, Nodes: []upgrade.NodeStatus{bad}}}
	code, stdout, stderr := runCairn(t, "", "upgrade", "status", "--follow")
	want := `upgrade-20261130-100000: Running
created 2026-11-30T10:00:00Z; max unavailable 1, drain timeout 10m0s, health timeout 15m0s
NODE  PHASE    VERSION  DRAIN  WRITE  REBOOT+HEALTHY  REASON
s1    Pending
upgrade: s1: Failed: kubelet not Ready within 15m0s; booted v1 again
upgrade upgrade-20261130-100000: Failed: node s1: kubelet not Ready within 15m0s; booted v1 again
`
	if code != 1 || stdout != want || stderr != "" {
		t.Errorf("--follow: exit status %d, stderr %q, stdout:\n%s\nwant 1, nothing and:\n%s", code, stderr, stdout, want)
	}
}
