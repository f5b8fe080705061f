//go:build qemu

package test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/upgrade"
)

// TestUpgradeRollsBackSingle is the rollback on one server (embedded
// etcd), the shortest bed: the node boots e2e-3, whose baked config gives
// the kubelet a flag it refuses, misses a short health deadline, returns
// to slot A by itself, and the Upgrade ends Failed naming it and why.
func TestUpgradeRollsBackSingle(t *testing.T) {
	ctx := context.Background()
	bad := writeFile(t, "no-kubelet.yaml", "#cloud-config\nkubernetes:\n  kubelet-arg: [no-such-flag=1]\n")
	v1, v3 := upgradeBuild(t, "e2e-1"), upgradeBuild(t, "e2e-3", "-config", bad)
	b := startUpgradeSingle(t, ctx, v1, "e2e-1")
	n := b.nodes[0]
	source := b.serveBundle(v3)
	began := time.Now()
	code, out := b.cli(ctx, "upgrade", "--image", source, "--health-timeout", "6m")
	t.Logf("cairn upgrade exited %d after %s:\n%s", code, time.Since(began).Round(time.Second), out)
	if code == 0 {
		t.Errorf("cairn upgrade to a broken image exited 0")
	}
	// In this order, each after the one before: the old version's start
	// must be the one after the rollback, not the first boot's.
	for i, re := range []string{`init: starting cairn e2e-3`, `upgrade: cairn e2e-3 on slot B is not kept: not healthy within 6m0s: `, `init: starting cairn e2e-1`, `upgrade: back on slot A \(cairn e2e-1\) after a failed trial of cairn e2e-3`} {
		wait := n.m.WaitForNext
		if i == 0 {
			wait = n.m.WaitFor
		}
		l, err := wait(ctx, regexp.MustCompile(re))
		if err != nil {
			t.Fatalf("console: no line %q: %v", re, err)
		}
		t.Logf("%s: %s at %s", n.name, l.Text, secs(l.At))
	}
	var u upgrade.Upgrade
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(5 * time.Second) {
		all, err := b.upgrades()
		if err == nil {
			for _, one := range all {
				u = one
			}
			if upgrade.Done(u.Status.Phase) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upgrade did not end: %+v (%v)", u.Status, err)
		}
	}
	t.Logf("upgrade %s: %s: %s", u.Metadata.Name, u.Status.Phase, u.Status.Message)
	if u.Status.Phase != upgrade.Failed || !strings.Contains(u.Status.Message, "node "+n.name+": not healthy within 6m0s") || !strings.Contains(u.Status.Message, "kubelet") {
		t.Errorf("the upgrade ended %s (%q); want Failed naming %s and the kubelet", u.Status.Phase, u.Status.Message, n.name)
	}
	if s := b.waitNode(n.name, 5*time.Minute, func(s nodeState) bool { return s.ready && s.version == "e2e-1" }); !s.ready || s.version != "e2e-1" {
		t.Errorf("node %s after the rollback: Ready %v, version %q; want Ready at e2e-1", n.name, s.ready, s.version)
	}
	b.noSecrets()
}
