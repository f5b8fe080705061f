//go:build qemu

package test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/qemu"
	"github.com/cairn-os/cairn/qemu/container"
)

// Rolling upgrades on the container platform (issue 27): the acceptance
// of issue 14 on a whole HA cluster, which three TCG VMs cannot run on
// this machine. Each node boots from a node directory, as `cairn cluster
// up` makes it: slot A holding build e2e-1's system image, loader entries,
// STATE. The init writes its other slot file and reboots as on a disk; its
// launcher starts it again on the slot the entries name, honouring them as
// systemd-boot does (one try for an entry on trial, then the last good
// one). The checks are upgrade_test.go's.

// upgradeContainerReady bounds a container node's start to Ready on a
// loaded 2-core machine.
const upgradeContainerReady = 10 * time.Minute

// TestUpgradeRolling is the first acceptance of issue 14: two servers on
// PostgreSQL with a VIP and an agent, booted from build e2e-1, upgraded
// with build e2e-2's bundle by `cairn upgrade` while a client polls a
// Deployment with a PodDisruptionBudget: the Upgrade ends Succeeded, every
// node runs e2e-2 (its console, its OS image and its annotation) from its
// other slot, the Deployment always had an available replica, and no
// console shows a secret. Its subtest rolls-back then upgrades the same
// cluster to e2e-3, whose kubelet cannot run (TestUpgradeRollsBack's
// check, without a cluster of its own).
func TestUpgradeRolling(t *testing.T) {
	ctx := context.Background()
	v1, v2 := containerBuild(t, "e2e-1"), containerBuild(t, "e2e-2")
	b := startUpgradeContainers(t, ctx, v1, "e2e-1")
	b.deploySteady()
	if !t.Run("e2e-1-to-e2e-2", func(t *testing.T) { b.t = t; testRollingUpgrade(b, ctx, v2, "e2e-1", "e2e-2") }) {
		return
	}
	t.Run("rolls-back", func(t *testing.T) {
		b.t = t
		testRollsBack(b, ctx, "e2e-2")
	})
}

// TestUpgradeRollsBack is the second acceptance of issue 14 on a cluster
// of its own: an upgrade to a build whose kubelet cannot run rolls back
// on the first node, which says why, and stops the rollout there.
func TestUpgradeRollsBack(t *testing.T) {
	ctx := context.Background()
	b := startUpgradeContainers(t, ctx, containerBuild(t, "e2e-1"), "e2e-1")
	b.deploySteady()
	testRollsBack(b, ctx, "e2e-1")
}

// containerBuild builds the board's update bundle at version: its
// system.sqfs is what a node directory's slot holds.
func containerBuild(t *testing.T, version string) string {
	t.Helper()
	return bundleBuild(t, version, "update", upgradeComponents(t))
}

var brokenBuilt built

// brokenComponents are upgradeComponents with a kubelet that cannot run:
// a program that says so and exits 1. (A baked-in config, the QEMU tests'
// broken build, does not reach a container node: its node directory's
// config takes the baked one's place.)
func brokenComponents(t *testing.T) string {
	t.Helper()
	src := upgradeComponents(t)
	return brokenBuilt.get(t, func() (string, error) {
		dir := filepath.Join(workDir, "components-broken")
		if out, err := exec.Command("cp", "-al", src, dir).CombinedOutput(); err != nil {
			return "", fmt.Errorf("cp -al %s %s: %v: %s", src, dir, err, out)
		}
		kubelet := filepath.Join(dir, "linux-"+runtime.GOARCH, "usr/bin/kubelet")
		if err := os.Remove(kubelet); err != nil {
			return "", err
		}
		tmp, err := os.MkdirTemp(workDir, "kubelet-")
		if err != nil {
			return "", err
		}
		prog := "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tfmt.Fprintln(os.Stderr, \"kubelet: this build's kubelet is broken on purpose (an e2e test)\")\n\tos.Exit(1)\n}\n"
		for name, content := range map[string]string{"main.go": prog, "go.mod": "module brokenkubelet\n\ngo 1.22\n"} {
			if err := os.WriteFile(filepath.Join(tmp, name), []byte(content), 0o644); err != nil {
				return "", err
			}
		}
		cmd := exec.Command("go", "build", "-o", kubelet, ".")
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building the broken kubelet: %v: %s", err, out)
		}
		return dir, nil
	})
}

// startUpgradeContainers starts the HA guide on the container platform
// from build dir's system image: two servers on PostgreSQL holding the
// VIP and an agent joined through it, each on a node directory, and waits
// for three Ready nodes running version.
func startUpgradeContainers(t *testing.T, ctx context.Context, dir, version string) *upgradeBed {
	t.Helper()
	b := &upgradeBed{t: t, ns: bridgeNS(t), platform: "container platform", rollHealth: "10m", backHealth: "4m"}
	b.broken = func() string { return bundleBuild(b.t, "e2e-3", "update", brokenComponents(b.t)) }
	t.Logf("load: %s", loadAvg())
	b.pg = startPostgres(t, b.ns, dsAddr)
	system := filepath.Join(dir, upgrade.BundleDir, upgrade.SystemFile)
	// The launcher, as `cairn cluster up` takes it: the image's own init.
	launcher := filepath.Join(t.TempDir(), "init")
	if err := container.ExtractInit(ctx, system, launcher); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	for i, name := range []string{"s1", "s2"} {
		addr := fmt.Sprintf("192.168.77.%d", 21+i)
		b.addContainer(ctx, launcher, system, name, addr, serverConfig(name, addr, clusterToken, b.pg.endpoint(), "  vip: "+upgradeVIP))
	}
	b.addContainer(ctx, launcher, system, "a1", "192.168.77.23", agentConfig("a1", "192.168.77.23", clusterToken, "https://"+upgradeVIP+":6443"))
	for _, n := range b.nodes {
		start := n.ctr.waitFor(t, upgradeContainerReady, reInitVersion)
		if got := reInitVersion.FindStringSubmatch(start.Text)[1]; got != version {
			t.Errorf("%s boots cairn %s; want %s: %s", n.name, got, version, start.Text)
		}
		ready := n.ctr.waitFor(t, upgradeContainerReady, reIsReady)
		t.Logf("figures: %s (container platform, %d nodes at once): launcher start to init %s, to node Ready %s (%s since the first start; load %s)",
			n.name, len(b.nodes), secs(start.At), secs(ready.At), secs(time.Since(began)), loadAvg())
	}
	b.connect(ctx, upgradeVIP, "192.168.77.21", "192.168.77.22")
	return b
}

// addContainer makes a node directory for name (slot A holding system,
// config as its cloud-config) and starts its launcher on a new peer of the
// bridge.
func (b *upgradeBed) addContainer(ctx context.Context, launcher, system, name, addr, config string) {
	t := b.t
	t.Helper()
	disk := filepath.Join(b.nodeDir(name), "disk")
	if err := container.NewDisk(disk, system, []byte(config), nil); err != nil {
		t.Fatal(err)
	}
	netns, err := b.ns.AddPeer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := &diskNode{name: name, addr: addr}
	n.ctr = startSlotNode(t, name, launcher, disk, netns)
	b.nodes = append(b.nodes, n)
}

// slotNode is a container-platform node on its node directory: one
// launcher for its life, the node's reboots inside it, its console kept
// with each line's arrival since the launcher started.
type slotNode struct {
	name  string
	cmd   *exec.Cmd
	netns string
	began time.Time

	mu    sync.Mutex
	lines []qemu.Line
	more  chan struct{} // closed and replaced when a line arrives
	done  chan struct{}
}

// startSlotNode starts the launcher on disk in netns; its console goes to
// out/test-logs/TEST-NAME.log.
func startSlotNode(t *testing.T, name, launcher, disk, netns string) *slotNode {
	t.Helper()
	logf, err := os.Create(filepath.Join(logDir(t), strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	// cairn.debug: the components' output goes to the console log too.
	cmd := exec.Command(launcher, "-platform", "container", "-disk", disk, "-netns", netns, "-cmdline", "cairn.platform=container cairn.debug")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	n := &slotNode{name: name, cmd: cmd, netns: netns, began: time.Now(), more: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(logf, "%s %s\n", time.Now().Format("15:04:05.000"), sc.Text())
			n.mu.Lock()
			n.lines = append(n.lines, qemu.Line{Text: sc.Text(), At: time.Since(n.began)})
			close(n.more)
			n.more = make(chan struct{})
			n.mu.Unlock()
		}
		cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.stop()
		logf.Close()
		exec.Command("ip", "netns", "delete", filepath.Base(n.netns)).Run()
	})
	return n
}

// Lines is every console line so far.
func (n *slotNode) Lines() []qemu.Line {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]qemu.Line(nil), n.lines...)
}

// Count is how many console lines match re.
func (n *slotNode) Count(re *regexp.Regexp) int {
	c := 0
	for _, l := range n.Lines() {
		if re.MatchString(l.Text) {
			c++
		}
	}
	return c
}

// WaitFor returns the first console line matching re, waiting for it
// until ctx ends or the launcher does.
func (n *slotNode) WaitFor(ctx context.Context, re *regexp.Regexp) (qemu.Line, error) {
	seen := 0
	for {
		n.mu.Lock()
		lines, more := n.lines, n.more
		n.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if re.MatchString(lines[seen].Text) {
				return lines[seen], nil
			}
		}
		select {
		case <-more:
		case <-n.done:
			n.mu.Lock()
			left := len(n.lines) > seen
			n.mu.Unlock()
			if !left {
				return qemu.Line{}, fmt.Errorf("%s's launcher ended before a line %q", n.name, re)
			}
		case <-ctx.Done():
			return qemu.Line{}, fmt.Errorf("%s printed no line %q: %w", n.name, re, ctx.Err())
		}
	}
}

// waitFor is WaitFor within d, or the end of the test with the console's
// last lines.
func (n *slotNode) waitFor(t *testing.T, d time.Duration, re *regexp.Regexp) qemu.Line {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	l, err := n.WaitFor(ctx, re)
	if err != nil {
		lines := n.Lines()
		var tail []string
		for _, l := range lines[max(0, len(lines)-40):] {
			tail = append(tail, l.Text)
		}
		t.Fatalf("%v; its console:\n%s", err, strings.Join(tail, "\n"))
	}
	return l
}

// stop asks the node for an orderly shutdown (SIGTERM to the launcher,
// which passes it on) and kills it after 2 minutes.
func (n *slotNode) stop() {
	if n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(2 * time.Minute):
		n.cmd.Process.Kill()
		<-n.done
	}
}
