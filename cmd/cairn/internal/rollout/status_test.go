package rollout

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/cmd/cairn/internal/rollout/rollouttest"
	"github.com/cairn-os/cairn/config/upgrade"
)

func TestStatus(t *testing.T) {
	quick(t)
	f, kc := rollouttest.New(t, rollouttest.ThreeNodes...)
	k := open(t, kc)
	status := func(name string) (string, error) {
		var stdout strings.Builder
		err := Status(context.Background(), &stdout, &stdout, k, kc, name, false)
		return stdout.String(), err
	}
	if stdout, err := status(""); err != nil || stdout != "no upgrade in the cluster (namespace cairn-system)\n" {
		t.Errorf("no upgrade: error %v, stdout %q", err, stdout)
	}
	old := &upgrade.Upgrade{Metadata: upgrade.Metadata{Name: "upgrade-20261129-090000", CreationTimestamp: "2026-11-29T09:00:00Z"}, Status: upgrade.Status{Phase: upgrade.Succeeded}}
	bad := node("s2", upgrade.Failed, "08:33", "08:40", "08:50", "09:30", "24:00")
	bad.Reason = "Deployment default/web not available within 15m0s"
	u := &upgrade.Upgrade{
		Metadata: upgrade.Metadata{Name: "upgrade-20261130-100000", CreationTimestamp: "2026-11-30T10:00:00Z"},
		Spec: upgrade.Spec{Nodes: []string{"s1", "s2", "a1"}, MaxUnavailable: 1, Checks: []upgrade.Check{{Deployment: "default/web"}},
			Images: []upgrade.Image{{Bundle: upgrade.Bundle{Board: "qemu-x86_64", Arch: "amd64", Version: "v2"}}}},
		Status: upgrade.Status{Phase: upgrade.Failed, Message: "node s2: " + bad.Reason, Nodes: []upgrade.NodeStatus{
			node("s1", upgrade.Succeeded, "01:00", "01:12", "01:21", "03:00", "08:32"), bad}},
	}
	f.Upgrades[old.Metadata.Name], f.Upgrades[u.Metadata.Name] = old, u
	stdout, err := status("")
	want := `upgrade-20261130-100000: Failed: node s2: Deployment default/web not available within 15m0s
created 2026-11-30T10:00:00Z; max unavailable 1, drain timeout 10m0s, health timeout 15m0s
image: qemu-x86_64 v2 (amd64), files from the servers
check: deployment default/web available
NODE  PHASE      VERSION  DRAIN  WRITE  REBOOT+HEALTHY  REASON
s1    Succeeded  v1 → v2  12s    9s     431s
s2    Failed     v1 → v2  7s     10s    910s            Deployment default/web not available within 15m0s
a1    Pending
`
	if err != nil || stdout != want {
		t.Errorf("error %v, stdout:\n%s\nwant:\n%s", err, stdout, want)
	}
	stdout, err = status(old.Metadata.Name)
	if err != nil || !strings.HasPrefix(stdout, "upgrade-20261129-090000: Succeeded\n") {
		t.Errorf("status NAME: error %v, stdout %q", err, stdout)
	}
	_, err = status("upgrade-nope")
	if !errors.Is(err, errNoUpgrade) || !strings.Contains(err.Error(), "no upgrade upgrade-nope in namespace cairn-system") {
		t.Errorf("status of a missing upgrade: error %v", err)
	}
}

// TestFollowInterrupted: Ctrl-C stops following, says the upgrade goes on
// and how to follow it again.
func TestFollowInterrupted(t *testing.T) {
	quick(t)
	f, kc := rollouttest.New(t, rollouttest.ThreeNodes...)
	f.Upgrades["upgrade-20261130-100000"] = &upgrade.Upgrade{Metadata: upgrade.Metadata{Name: "upgrade-20261130-100000"}, Status: upgrade.Status{Phase: upgrade.Running}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr strings.Builder
	err := followUpgrade(ctx, &stdout, &stderr, open(t, kc), "upgrade-20261130-100000", "cairn upgrade status --kubeconfig KC --follow upgrade-20261130-100000")
	want := "cairn upgrade: stopped following; upgrade upgrade-20261130-100000 goes on in the cluster. Follow it with: cairn upgrade status --kubeconfig KC --follow upgrade-20261130-100000\n"
	if err != ErrReported || stderr.String() != want {
		t.Errorf("error %v, stderr %q; want ErrReported and %q", err, stderr.String(), want)
	}
}
