//go:build qemu

package test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/qemu"
)

// Rolling upgrades (issues 14 and 27) on real machines: x86_64 VMs booted
// through OVMF from their own disks (qcow2 overlays over one build's
// disk.img), on TAP devices of the test bridge, upgraded by `cairn upgrade`
// with the update bundle of a second build. The nodes write their other
// slot and reboot into it; the test watches their consoles, the Upgrade
// object, the Node objects and a Deployment a client polls throughout. The
// same checks run on the container platform (upgrade_container_test.go),
// where a whole HA cluster fits on this machine.

const (
	upgradeBoard = "qemu-x86_64"
	upgradeVIP   = "192.168.77.100"
	// upgradeReady bounds power-on to Ready of TCG VMs started at once on
	// a shared 2-core machine (~500 s for three when it is idle).
	upgradeReady = 35 * time.Minute
	// upgradeDisk is the size of each VM's disk: STATE grows into it at
	// the first boot and holds containerd's images and the pods.
	upgradeDisk = "8G"
	// steadyApp is the Deployment the rolling upgrade must keep available.
	steadyApp = "steady"
)

var (
	reInitVersion = regexp.MustCompile(`cairn: \[\d+\.\d+\] init: starting cairn (\S+) on `)
	reIsReady     = regexp.MustCompile(`cairn: \[\d+\.\d+\] node: (\S+) is Ready`)
	// The init's line as it starts to write the other slot, matched
	// loosely: `upgrade: writing slot B (system.sqfs, 92 MiB)`.
	reWritingSlot = regexp.MustCompile(`upgrade: writing slot`)
	// The trial system's init keeps it, or gives it up and restarts;
	// the old system's init then says why it is back.
	reTrialKept     = regexp.MustCompile(`cairn: \[\d+\.\d+\] upgrade: cairn (\S+) on slot ([AB]) is healthy (\d+)s after its start: kept`)
	reTrialRejected = regexp.MustCompile(`cairn: \[\d+\.\d+\] upgrade: cairn (\S+) on slot ([AB]) is not kept: (.*); restarting into slot ([AB]) \(cairn (\S+)\)`)
	reBackOnSlot    = regexp.MustCompile(`cairn: \[\d+\.\d+\] upgrade: back on slot ([AB]) \(cairn (\S+)\) after a failed trial of cairn (\S+): (.*)`)
)

// upgradeBuild builds the board's disk and update bundle at version with
// the node components (plus extra flags, like -config FILE).
func upgradeBuild(t *testing.T, version string, extra ...string) string {
	t.Helper()
	return bundleBuild(t, version, "disk,update", upgradeComponents(t), extra...)
}

// bundleBuild builds the board's formats at version with the components
// comps (plus extra flags) and checks the bundle's manifest: the version
// asked for, every file there with the size and sha256 update.json gives.
func bundleBuild(t *testing.T, version, formats, comps string, extra ...string) string {
	t.Helper()
	dir := image(t, upgradeBoard, append([]string{"--version", version, "--format", formats, "-components", comps}, extra...)...)
	bdir := filepath.Join(dir, upgrade.BundleDir)
	data, err := os.ReadFile(filepath.Join(bdir, upgrade.BundleFile))
	if err != nil {
		t.Fatalf("the build at %s wrote no bundle manifest: %v", version, err)
	}
	var b upgrade.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatalf("%s/%s: %v", bdir, upgrade.BundleFile, err)
	}
	if err := b.Check(); err != nil {
		t.Fatalf("%s/%s: %v", bdir, upgrade.BundleFile, err)
	}
	if b.Version != version || b.Board != upgradeBoard {
		t.Fatalf("%s/%s is version %q of board %q; want %q of %q", bdir, upgrade.BundleFile, b.Version, b.Board, version, upgradeBoard)
	}
	for _, f := range b.Files {
		h := sha256.New()
		file, err := os.Open(filepath.Join(bdir, f.Name))
		if err != nil {
			t.Fatalf("bundle %s: %v", version, err)
		}
		n, err := io.Copy(h, file)
		file.Close()
		if err != nil || n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
			t.Fatalf("bundle %s: %s is %d bytes (%v), sha256 %x; update.json says %d bytes, %s", version, f.Name, n, err, h.Sum(nil), f.Size, f.SHA256)
		}
	}
	return dir
}

var upCompsBuilt built

// upgradeComponents is a copy of the node components, made once per run,
// so every build of a test has the same ones: the versions then differ in
// their version (and v3 in its config) only. (Builds read out/components
// while `make components` may rewrite it: two builds 15 s apart once got
// different trees.)
func upgradeComponents(t *testing.T) string {
	t.Helper()
	src := componentsDir(t)
	return upCompsBuilt.get(t, func() (string, error) {
		dir := filepath.Join(workDir, "components")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		// out/components/linux-ARCH is a link to the tree a components
		// build swapped in: copy the tree.
		tree, err := filepath.EvalSymlinks(src)
		if err != nil {
			return "", err
		}
		if out, err := exec.Command("cp", "-a", tree, filepath.Join(dir, filepath.Base(src))).CombinedOutput(); err != nil {
			return "", fmt.Errorf("copying the node components: %v: %s", err, out)
		}
		return dir, nil
	})
}

// diskNode is one node of an upgrade test: a VM with its own disk, seed
// and TAP device, booted again on the same disk after a power loss; or a
// container-platform node on its node directory (ctr).
type diskNode struct {
	name, addr string
	disk, seed string
	tap, mac   string
	boots      int // QEMU starts (not guest reboots, which stay in one QEMU)
	m          *qemu.Machine
	ctr        *slotNode
}

// upgradeConsole is a node's console as the upgrade tests read it.
type upgradeConsole interface {
	Lines() []qemu.Line
	Count(re *regexp.Regexp) int
	WaitFor(ctx context.Context, re *regexp.Regexp) (qemu.Line, error)
}

// console is the node's console: its VM's serial console, or its
// container's output.
func (n *diskNode) console() upgradeConsole {
	if n.ctr != nil {
		return n.ctr
	}
	return n.m
}

// upgradeBed is the machines of one upgrade test on one bridge, the
// datastore when there is one, and the way to the apiservers.
type upgradeBed struct {
	t          *testing.T
	ns         *qemu.Netns
	pg         *postgres // nil: the servers' embedded etcd
	nodes      []*diskNode
	kubeconfig string   // file: the VIP, or the one server
	urls       []string // apiservers the test asks, in order
	api        *apiClient
	smp        int // vCPUs per VM
	// platform names the bed in figures; rollHealth and backHealth are
	// the health timeouts of the rolling upgrade and of the rollback
	// (which waits all of it); broken builds the bundle whose node is not
	// healthy.
	platform               string
	rollHealth, backHealth string
	broken                 func() string
}

func newUpgradeBed(t *testing.T) *upgradeBed {
	t.Helper()
	t.Logf("load: %s", loadAvg())
	smp := 2
	if v := os.Getenv("CAIRN_E2E_SMP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 8 {
			t.Fatalf("CAIRN_E2E_SMP=%q: give a vCPU count from 1 to 8", v)
		}
		smp = n
	}
	b := &upgradeBed{t: t, ns: bridgeNS(t), smp: smp, platform: fmt.Sprintf("TCG, %d vCPUs", smp), rollHealth: "25m", backHealth: "12m"}
	// e2e-3's baked config gives the kubelet a flag it refuses.
	b.broken = func() string {
		bad := writeFile(b.t, "no-kubelet.yaml", "#cloud-config\nkubernetes:\n  kubelet-arg: [no-such-flag=1]\n")
		return upgradeBuild(b.t, "e2e-3", "-config", bad)
	}
	return b
}

// nodeDir is where a VM's disk and seed go: a test's temporary directory,
// or with CAIRN_E2E_KEEP=1 a directory kept after a failed test, so its
// disk's logs (STATE's log/cairn/) can be read afterwards.
func (b *upgradeBed) nodeDir(name string) string {
	t := b.t
	t.Helper()
	if os.Getenv("CAIRN_E2E_KEEP") != "1" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "cairn-e2e-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s: disk and seed kept in %s (CAIRN_E2E_KEEP=1)", name, dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// loadAvg is the machine's load (1, 5 and 15 minutes), for the report.
func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// addNode makes a VM's disk (a qcow2 overlay over dir's disk.img, so each
// VM writes its own slots and STATE) and seed (userData, a static address
// on the bridge) and boots it.
func (b *upgradeBed) addNode(ctx context.Context, dir, name, addr, userData string) *diskNode {
	t := b.t
	t.Helper()
	n := &diskNode{name: name, addr: addr, mac: fmt.Sprintf("52:54:00:77:01:%02x", 0x21+len(b.nodes))}
	tmp := b.nodeDir(name)
	n.disk = filepath.Join(tmp, "disk.qcow2")
	base, err := filepath.Abs(filepath.Join(dir, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", n.disk, upgradeDisk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create %s: %v: %s", n.disk, err, out)
	}
	n.seed = filepath.Join(tmp, "seed.iso")
	err = qemu.MakeSeedISO(ctx, n.seed, qemu.Seed{
		UserData:      []byte(userData),
		NetworkConfig: []byte("version: 2\nethernets:\n  eth0:\n    addresses: [" + addr + "/24]\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.tap, err = b.ns.AddTAP(ctx); err != nil {
		t.Fatal(err)
	}
	b.nodes = append(b.nodes, n)
	b.boot(ctx, n)
	return n
}

// boot starts n's QEMU on its disk, which may reboot itself (the upgrade's
// trial boot and rollback happen inside one QEMU). A start after the first
// has a log of its own (NAME-power2.log).
func (b *upgradeBed) boot(ctx context.Context, n *diskNode) {
	t := b.t
	t.Helper()
	bd, err := boards.Load(upgradeBoard)
	if err != nil {
		t.Fatal(err)
	}
	n.boots++
	name := n.name
	if n.boots > 1 {
		name = fmt.Sprintf("%s-power%d", n.name, n.boots)
	}
	n.m = bootFirmware(t, ctx, bd, qemu.Config{
		Name: name, Netns: b.ns, Memory: 3072, SMP: b.smp, AllowReboot: true,
		FailOn: qemu.FatalLines, Seed: n.seed,
		Drives: []qemu.Drive{{Path: n.disk, Format: "qcow2"}},
		NICs:   []qemu.NIC{{TAP: n.tap, MAC: n.mac}},
	})
}

// waitBooted waits for n's init to start and checks it runs version.
func (b *upgradeBed) waitBooted(ctx context.Context, n *diskNode, version string) qemu.Line {
	b.t.Helper()
	l := waitFor(b.t, ctx, n.m, bootTimeout, reInitVersion)
	if got := reInitVersion.FindStringSubmatch(l.Text)[1]; got != version {
		b.t.Errorf("%s boots cairn %s; want %s: %s", n.name, got, version, l.Text)
	}
	return l
}

// tcgLeases are a server's leases for VMs under TCG on a loaded 2-core
// machine. With the defaults (15 s, renew within 10 s) the
// controller-manager lost its lease every minute or two at load 10, exited,
// and never ran long enough to approve the kubelets' certificates (three
// nodes not Ready after 22 minutes); the VIP moved every few seconds. With
// 90 s (renew within 60 s), three VMs at load 4-7 still lost it every
// 100 s: kine's queries took up to 47 s inside the starved guests, each
// restart's relisting loaded the apiservers again, and the Deployment
// never became available in 10 minutes. Leaders now survive 4 minutes of
// a slow apiserver, and a node is marked NotReady (its pods unready) only
// after 3 minutes without a heartbeat. (Measured on three VMs, two servers
// on PostgreSQL with a VIP, whose leases were 40 s, renewed within 30 s.)
const tcgLeases = `  kube-controller-manager-arg: [leader-elect-lease-duration=300s, leader-elect-renew-deadline=240s, leader-elect-retry-period=20s, node-monitor-grace-period=180s]
  kube-scheduler-arg: [leader-elect-lease-duration=300s, leader-elect-renew-deadline=240s, leader-elect-retry-period=20s]
`

// startUpgradeSingle boots one server on its embedded etcd from dir's disk
// image and waits for it to be Ready at version.
func startUpgradeSingle(t *testing.T, ctx context.Context, dir, version string) *upgradeBed {
	t.Helper()
	b := newUpgradeBed(t)
	began := time.Now()
	b.addNode(ctx, dir, "s1", "192.168.77.21", fmt.Sprintf("#cloud-config\nhostname: s1\nkubernetes:\n  token: %s\n", clusterToken))
	b.waitReady(ctx, version, began)
	b.connect(ctx, "192.168.77.21")
	return b
}

// waitReady waits for every node's init to start at version and say its
// node is Ready.
func (b *upgradeBed) waitReady(ctx context.Context, version string, began time.Time) {
	t := b.t
	t.Helper()
	for _, n := range b.nodes {
		start := b.waitBooted(ctx, n, version)
		ready := waitFor(t, ctx, n.m, upgradeReady, reIsReady)
		t.Logf("figures: %s (%s disk, TCG, %d vCPUs, %d VMs at once): QEMU start to init %s, to node Ready %s (%s since the first power-on; load %s)",
			n.name, upgradeBoard, b.smp, len(b.nodes), secs(start.At), secs(ready.At), secs(time.Since(began)), loadAvg())
	}
}

// connect gets an admin kubeconfig from the first address (cairn
// kubeconfig, as a user runs it), writes it for the CLI and checks every
// node is Ready in the API.
func (b *upgradeBed) connect(ctx context.Context, addrs ...string) {
	t := b.t
	t.Helper()
	tok, _ := join.ParseToken(clusterToken)
	jc := &join.Client{Server: "https://" + addrs[0] + ":6443", Token: tok, DialContext: b.ns.DialContext, Timeout: time.Minute}
	// Under load the VIP comes and goes while the apiservers settle.
	var kc []byte
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(10 * time.Second) {
		var err error
		if kc, err = jc.AdminKubeconfig(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cairn kubeconfig from %s for 10 minutes: %v", addrs[0], err)
		}
	}
	b.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(b.kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	b.api = newAPIClient(t, b.ns, kc)
	for _, a := range addrs {
		b.urls = append(b.urls, "https://"+a+":6443")
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		nodes, err := b.nodeInfo()
		ready := 0
		for _, n := range b.nodes {
			if nodes[n.name].ready {
				ready++
			}
		}
		if err == nil && ready == len(b.nodes) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d nodes Ready in the API 5 minutes after their consoles said so (%v): %+v", ready, len(b.nodes), err, nodes)
		}
		time.Sleep(5 * time.Second)
	}
}

// get asks the apiservers in turn for path and returns the first answer
// that is not a server error: a node being upgraded does not answer.
func (b *upgradeBed) get(path string) ([]byte, error) {
	var errs []string
	for _, u := range b.urls {
		code, body, err := b.api.do("GET", u+path, nil)
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("%s: %v", u, err))
		case code != 200:
			errs = append(errs, fmt.Sprintf("%s: %d %s", u, code, strings.TrimSpace(string(body))))
		default:
			return body, nil
		}
	}
	return nil, fmt.Errorf("GET %s: %s", path, strings.Join(errs, "; "))
}

// create posts obj to path on the first apiserver that answers.
func (b *upgradeBed) create(path string, obj any) {
	b.t.Helper()
	var last string
	for _, u := range b.urls {
		code, body, err := b.api.do("POST", u+path, obj)
		if code == 201 {
			return
		}
		last = fmt.Sprintf("%s: %d %v %s", u, code, err, body)
	}
	b.t.Fatalf("POST %s: %s", path, last)
}

// nodeState is what the test reads of a Node.
type nodeState struct {
	ready         bool
	unschedulable bool
	osImage       string
	version, slot string // the init's annotations
}

func (b *upgradeBed) nodeInfo() (map[string]nodeState, error) {
	body, err := b.get("/api/v1/nodes")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name        string
				Annotations map[string]string
			}
			Spec   struct{ Unschedulable bool }
			Status struct {
				Conditions []struct{ Type, Status string }
				NodeInfo   struct {
					OSImage string `json:"osImage"`
				} `json:"nodeInfo"`
			}
		}
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	out := map[string]nodeState{}
	for _, n := range list.Items {
		s := nodeState{
			unschedulable: n.Spec.Unschedulable, osImage: n.Status.NodeInfo.OSImage,
			version: n.Metadata.Annotations[upgrade.VersionAnnotation], slot: n.Metadata.Annotations[upgrade.SlotAnnotation],
		}
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				s.ready = true
			}
		}
		out[n.Metadata.Name] = s
	}
	return out, nil
}

// mustNodes is nodeInfo or the end of the test.
func (b *upgradeBed) mustNodes() map[string]nodeState {
	b.t.Helper()
	nodes, err := b.nodeInfo()
	if err != nil {
		b.t.Fatalf("listing nodes: %v", err)
	}
	return nodes
}

// upgrades lists the Upgrade objects by name.
func (b *upgradeBed) upgrades() (map[string]upgrade.Upgrade, error) {
	body, err := b.get(upgrade.Path(""))
	if err != nil {
		return nil, err
	}
	var list struct{ Items []upgrade.Upgrade }
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	out := map[string]upgrade.Upgrade{}
	for _, u := range list.Items {
		out[u.Metadata.Name] = u
	}
	return out, nil
}

// newUpgrade is the one Upgrade object not among before.
func (b *upgradeBed) newUpgrade(before map[string]upgrade.Upgrade) upgrade.Upgrade {
	b.t.Helper()
	all, err := b.upgrades()
	if err != nil {
		b.t.Fatalf("listing upgrades: %v", err)
	}
	var found []upgrade.Upgrade
	for name, u := range all {
		if _, ok := before[name]; !ok {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		b.t.Fatalf("%d new Upgrade objects in %s; want the one cairn upgrade made: %+v", len(found), upgrade.Namespace, found)
	}
	return found[0]
}

// cli runs `cairn upgrade ARGS --kubeconfig KC` in the bridge's namespace
// until it ends or ctx does, and returns its exit status and output, which
// also goes to out/test-logs/TEST-NAME.log and to the test's log line by
// line.
func (b *upgradeBed) cli(ctx context.Context, name string, args ...string) (int, string) {
	t := b.t
	t.Helper()
	argv := append([]string{"upgrade"}, args...)
	argv = append(argv, "--kubeconfig", b.kubeconfig)
	cmd := b.ns.Command(ctx, cairn(t), argv...)
	cmd.Dir = repoRoot()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	logPath := filepath.Join(logDir(t), strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	var out strings.Builder
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintf(log, "%s %s\n", time.Now().Format("15:04:05"), sc.Text())
			out.WriteString(sc.Text() + "\n")
			t.Logf("cairn upgrade (%s): %s", name, sc.Text())
		}
	}()
	t.Logf("running cairn %s (output in %s)", strings.Join(argv, " "), logPath)
	err = cmd.Run()
	pw.Close()
	<-read
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("cairn %s: %v", strings.Join(argv, " "), err)
	}
	return code, out.String()
}

// boots is how many times each node's init has started.
func (b *upgradeBed) boots() map[string]int {
	out := map[string]int{}
	for _, n := range b.nodes {
		out[n.name] = n.console().Count(reInitVersion)
	}
	return out
}

// noSecrets checks no console shows the token or the datastore password.
func (b *upgradeBed) noSecrets() {
	for _, n := range b.nodes {
		for _, l := range n.console().Lines() {
			if strings.Contains(l.Text, clusterToken) || strings.Contains(l.Text, pgPassword) {
				b.t.Errorf("%s's console shows a secret: %s", n.name, l.Text)
				break
			}
		}
	}
}

func (b *upgradeBed) node(name string) *diskNode {
	for _, n := range b.nodes {
		if n.name == name {
			return n
		}
	}
	b.t.Fatalf("no VM is node %q", name)
	return nil
}

// deploySteady runs a Deployment of three pause containers (the image
// every node carries), spread over the nodes, with a PodDisruptionBudget
// of one, and waits until all three are available.
func (b *upgradeBed) deploySteady() {
	t := b.t
	t.Helper()
	labels := map[string]string{"app": steadyApp}
	b.create("/apis/apps/v1/namespaces/default/deployments", map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": steadyApp, "namespace": "default"},
		"spec": map[string]any{
			"replicas": 3,
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{
				"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{
					"terminationGracePeriodSeconds": 5,
					"affinity": map[string]any{"podAntiAffinity": map[string]any{
						"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{
							"weight": 100,
							"podAffinityTerm": map[string]any{
								"labelSelector": map[string]any{"matchLabels": labels},
								"topologyKey":   "kubernetes.io/hostname",
							},
						}},
					}},
					"containers": []any{map[string]any{"name": "pause", "image": pauseImage(t), "imagePullPolicy": "Never"}},
				},
			},
		},
	})
	b.create("/apis/policy/v1/namespaces/default/poddisruptionbudgets", map[string]any{
		"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
		"metadata": map[string]any{"name": steadyApp, "namespace": "default"},
		"spec":     map[string]any{"minAvailable": 1, "selector": map[string]any{"matchLabels": labels}},
	})
	began := time.Now()
	for {
		avail, err := b.available()
		if err == nil && avail == 3 {
			t.Logf("figures: Deployment %s: 3 of 3 replicas available %s after it was created", steadyApp, secs(time.Since(began)))
			return
		}
		if time.Since(began) > 10*time.Minute {
			t.Fatalf("Deployment %s: %d of 3 replicas available after 10 minutes (%v)", steadyApp, avail, err)
		}
		time.Sleep(5 * time.Second)
	}
}

// pauseImage is the pause image the node components carry (the pods'
// sandbox image), as components.json names it.
func pauseImage(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(componentsDir(t), "usr/share/cairn/components.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Components []struct{ Component, Version string }
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, c := range m.Components {
		if c.Component == "pause" {
			return c.Version
		}
	}
	t.Fatal("components.json names no pause image")
	return ""
}

// available is the steady Deployment's available replicas.
func (b *upgradeBed) available() (int, error) {
	body, err := b.get("/apis/apps/v1/namespaces/default/deployments/" + steadyApp)
	if err != nil {
		return 0, err
	}
	var d struct {
		Status struct {
			AvailableReplicas int `json:"availableReplicas"`
		}
	}
	err = json.Unmarshal(body, &d)
	return d.Status.AvailableReplicas, err
}

// availability is a client polling the steady Deployment every few
// seconds for as long as an upgrade runs.
type availability struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples int
	zero    []time.Time // answers of no available replica
	lowest  int
	blind   time.Duration // longest time no apiserver answered
}

func (b *upgradeBed) pollAvailability() *availability {
	a := &availability{stop: make(chan struct{}), done: make(chan struct{}), lowest: 1 << 30}
	go func() {
		defer close(a.done)
		lastAnswer := time.Now()
		for {
			avail, err := b.available()
			a.mu.Lock()
			now := time.Now()
			if err != nil {
				a.blind = max(a.blind, now.Sub(lastAnswer))
			} else {
				lastAnswer = now
				a.samples++
				a.lowest = min(a.lowest, avail)
				if avail == 0 {
					a.zero = append(a.zero, now)
				}
			}
			a.mu.Unlock()
			select {
			case <-a.stop:
				return
			case <-time.After(3 * time.Second):
			}
		}
	}()
	return a
}

// end stops the client and checks the Deployment never had no available
// replica.
func (a *availability) end(t *testing.T) {
	t.Helper()
	close(a.stop)
	<-a.done
	t.Logf("figures: Deployment %s polled %d times during the upgrade: at least %d replicas available; longest time no apiserver answered: %s",
		steadyApp, a.samples, a.lowest, secs(a.blind))
	if a.samples == 0 {
		t.Errorf("the Deployment %s was never read during the upgrade", steadyApp)
	}
	if len(a.zero) > 0 {
		t.Errorf("the Deployment %s had no available replica %d times during the upgrade, first at %s, last at %s",
			steadyApp, len(a.zero), a.zero[0].Format(time.TimeOnly), a.zero[len(a.zero)-1].Format(time.TimeOnly))
	}
}

// reportTimes logs each node's steps from the status times the nodes
// wrote, and the whole rollout.
func reportTimes(t *testing.T, u upgrade.Upgrade) {
	t.Helper()
	parse := func(s string) time.Time {
		tm, _ := time.Parse(time.RFC3339, s)
		return tm
	}
	span := func(from, to string) string {
		a, b := parse(from), parse(to)
		if a.IsZero() || b.IsZero() {
			return "-"
		}
		return secs(b.Sub(a))
	}
	var first, last time.Time
	for _, n := range u.Status.Nodes {
		t.Logf("figures: upgrade %s: %s %s→%s (slot %s) %s: drain %s, fetch+write %s, restart %s, healthy %s; total %s",
			u.Metadata.Name, n.Name, n.FromVersion, n.ToVersion, n.Slot, n.Phase,
			span(n.Started, n.Drained), span(n.Drained, n.Written), span(n.Written, n.Rebooted), span(n.Rebooted, n.Finished), span(n.Started, n.Finished))
		if s := parse(n.Started); !s.IsZero() && (first.IsZero() || s.Before(first)) {
			first = s
		}
		if f := parse(n.Finished); f.After(last) {
			last = f
		}
	}
	if !first.IsZero() && !last.IsZero() {
		t.Logf("figures: upgrade %s: %s, whole rollout %s (first node's start to last node's end)", u.Metadata.Name, u.Status.Phase, secs(last.Sub(first)))
	}
}

// TestUpgradeRollingQEMU is the real boot path on a cluster (issue 27):
// one server (embedded etcd) and an agent, x86_64 VMs booted through OVMF
// from build e2e-1's disk, upgraded with build e2e-2's bundle by `cairn
// upgrade` while a client polls a Deployment with a PodDisruptionBudget:
// both nodes end on e2e-2. Its subtest then upgrades to e2e-3, whose
// kubelet cannot start: the server rolls back by itself and the agent is
// never touched. (Three VMs, TestUpgradeRolling's bed, get no healthy
// cluster under TCG on two cores; the container platform runs that one.)
func TestUpgradeRollingQEMU(t *testing.T) {
	ctx := context.Background()
	v1, v2 := upgradeBuild(t, "e2e-1"), upgradeBuild(t, "e2e-2")
	b := startUpgradePair(t, ctx, v1, "e2e-1")
	b.deploySteady()
	if !t.Run("e2e-1-to-e2e-2", func(t *testing.T) { b.t = t; testRollingUpgrade(b, ctx, v2, "e2e-1", "e2e-2") }) {
		return
	}
	t.Run("rolls-back", func(t *testing.T) {
		if d, ok := t.Deadline(); ok && time.Until(d) < 50*time.Minute {
			t.Skipf("%s left before -timeout; the rollback needs about 50 minutes under TCG", time.Until(d).Round(time.Minute))
		}
		b.t = t
		testRollsBack(b, ctx, "e2e-2")
	})
}

// startUpgradePair boots one server on its embedded etcd and an agent
// joined to it from dir's disk image and waits for both to be Ready at
// version.
func startUpgradePair(t *testing.T, ctx context.Context, dir, version string) *upgradeBed {
	t.Helper()
	b := newUpgradeBed(t)
	began := time.Now()
	b.addNode(ctx, dir, "s1", "192.168.77.21", fmt.Sprintf("#cloud-config\nhostname: s1\nkubernetes:\n  token: %s\n%s", clusterToken, tcgLeases))
	b.addNode(ctx, dir, "a1", "192.168.77.23", fmt.Sprintf(
		"#cloud-config\nhostname: a1\nkubernetes:\n  role: agent\n  token: %s\n  server: https://192.168.77.21:6443\n", clusterToken))
	b.waitReady(ctx, version, began)
	b.connect(ctx, "192.168.77.21")
	return b
}

func testRollingUpgrade(b *upgradeBed, ctx context.Context, dir, from, to string) {
	t := b.t
	before, err := b.upgrades()
	if err != nil {
		t.Fatalf("listing upgrades: %v", err)
	}
	slots := map[string]string{}
	for name, s := range b.mustNodes() {
		slots[name] = s.slot
	}
	boots := b.boots()
	poll := b.pollAvailability()
	began := time.Now()
	t.Logf("load at the upgrade's start: %s", loadAvg())
	cctx, cancel := context.WithTimeout(ctx, 90*time.Minute)
	code, out := b.cli(cctx, "upgrade", "--image", dir, "--health-timeout", b.rollHealth, "--check-deployment", "default/"+steadyApp)
	cancel()
	took := time.Since(began)
	poll.end(t)
	t.Logf("figures: cairn upgrade of %d nodes %s→%s (%s): %s wall clock (load now %s)", len(b.nodes), from, to, b.platform, secs(took), loadAvg())
	if code != 0 {
		t.Errorf("cairn upgrade exited %d; want 0 (Succeeded)", code)
	}
	u := b.newUpgrade(before)
	reportTimes(t, u)
	if u.Status.Phase != upgrade.Succeeded {
		t.Errorf("Upgrade %s is %q (%s); want %s", u.Metadata.Name, u.Status.Phase, u.Status.Message, upgrade.Succeeded)
	}
	for _, n := range b.nodes {
		ns := u.Status.Node(n.name)
		if ns.Phase != upgrade.Succeeded || ns.FromVersion != from || ns.ToVersion != to {
			t.Errorf("Upgrade %s: node %s is %s (%s→%s, %s); want %s %s→%s", u.Metadata.Name, n.name, ns.Phase, ns.FromVersion, ns.ToVersion, ns.Reason, upgrade.Succeeded, from, to)
		}
	}
	nodes := b.mustNodes()
	for _, n := range b.nodes {
		s := nodes[n.name]
		if !s.ready || s.osImage != "cairn "+to || s.version != to {
			t.Errorf("node %s: Ready %v, OS image %q, %s %q; want Ready, %q, %q", n.name, s.ready, s.osImage, upgrade.VersionAnnotation, s.version, "cairn "+to, to)
		}
		if s.slot == "" || s.slot == slots[n.name] {
			t.Errorf("node %s runs from slot %q, as before the upgrade (%q); want the other one", n.name, s.slot, slots[n.name])
		}
		if s.unschedulable {
			t.Errorf("node %s is still cordoned after the upgrade", n.name)
		}
		// One more start of the init, at the new version.
		var starts []string
		for _, l := range n.console().Lines() {
			if m := reInitVersion.FindStringSubmatch(l.Text); m != nil {
				starts = append(starts, m[1])
			}
		}
		if len(starts) != boots[n.name]+1 || starts[len(starts)-1] != to {
			t.Errorf("node %s's init started as %v; want %d starts, the last at %s", n.name, starts, boots[n.name]+1, to)
		}
		if m := n.console().Count(reTrialKept); m != 1 {
			t.Errorf("node %s's console says %d times that it kept a trial system; want once", n.name, m)
		} else if l, err := n.console().WaitFor(ctx, reTrialKept); err == nil {
			t.Logf("%s's console: %s", n.name, l.Text)
		}
	}
	if st, out := b.cli(ctx, "status", "status"); st != 0 || !strings.Contains(out, upgrade.Succeeded) {
		t.Errorf("cairn upgrade status exited %d, saying:\n%s\nwant 0 and %s", st, out, upgrade.Succeeded)
	}
	if t.Failed() {
		t.Logf("cairn upgrade said:\n%s", out)
	}
	b.noSecrets()
}

// testRollsBack upgrades the cluster (at version from) to e2e-3, whose
// kubelet cannot run (b.broken): the first node boots e2e-3, misses its
// health deadline, goes back to its old slot by itself and says why; the
// Upgrade ends Failed naming it, and no other node was touched.
func testRollsBack(b *upgradeBed, ctx context.Context, from string) {
	t := b.t
	v3 := b.broken()
	before, err := b.upgrades()
	if err != nil {
		t.Fatalf("listing upgrades: %v", err)
	}
	boots := b.boots()
	lines := map[string]int{}
	for _, n := range b.nodes {
		lines[n.name] = len(n.console().Lines())
	}
	poll := b.pollAvailability()
	began := time.Now()
	t.Logf("load at the upgrade's start: %s", loadAvg())
	cctx, cancel := context.WithTimeout(ctx, 60*time.Minute)
	code, out := b.cli(cctx, "upgrade", "--image", v3, "--health-timeout", b.backHealth, "--check-deployment", "default/"+steadyApp)
	cancel()
	poll.end(t)
	t.Logf("figures: cairn upgrade %s→e2e-3 (its kubelet cannot run; %s, health timeout %s): ended after %s (load now %s)", from, b.platform, b.backHealth, secs(time.Since(began)), loadAvg())
	if code == 0 {
		t.Errorf("cairn upgrade to e2e-3 exited 0; want a failure")
	}
	u := b.newUpgrade(before)
	reportTimes(t, u)
	if len(u.Spec.Nodes) == 0 {
		t.Fatalf("Upgrade %s names no nodes", u.Metadata.Name)
	}
	first := b.node(u.Spec.Nodes[0])
	fs := u.Status.Node(first.name)
	t.Logf("Upgrade %s: %s: %q; node %s: %s: %q", u.Metadata.Name, u.Status.Phase, u.Status.Message, first.name, fs.Phase, fs.Reason)
	if u.Status.Phase != upgrade.Failed || !strings.Contains(u.Status.Message, first.name) {
		t.Errorf("Upgrade %s is %q (%q); want %s with a message naming %s", u.Metadata.Name, u.Status.Phase, u.Status.Message, upgrade.Failed, first.name)
	}
	if fs.Phase != upgrade.Failed || fs.Reason == "" {
		t.Errorf("Upgrade %s: node %s is %q with reason %q; want %s and a reason", u.Metadata.Name, first.name, fs.Phase, fs.Reason, upgrade.Failed)
	}

	// The first node's console: e2e-3 booted, the init gave it up, the old
	// system booted again and its node came back Ready. The Upgrade says
	// Failed as the old system says it is back, before its node is Ready.
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		ls := first.console().Lines()[lines[first.name]:]
		i := slices.IndexFunc(ls, func(l qemu.Line) bool { return reBackOnSlot.MatchString(l.Text) })
		if i >= 0 && slices.ContainsFunc(ls[i:], func(l qemu.Line) bool { return reIsReady.MatchString(l.Text) }) {
			break
		}
	}
	var seq []string
	var trial, back qemu.Line
	for _, l := range first.console().Lines()[lines[first.name]:] {
		switch {
		case reInitVersion.MatchString(l.Text):
			v := reInitVersion.FindStringSubmatch(l.Text)[1]
			seq = append(seq, "start "+v)
			if v == "e2e-3" && trial.Text == "" {
				trial = l
			}
		case reTrialRejected.MatchString(l.Text):
			seq = append(seq, "not kept")
			if back.Text == "" {
				back = l
			}
			t.Logf("%s's console: %s", first.name, l.Text)
		case reBackOnSlot.MatchString(l.Text):
			seq = append(seq, "back")
			t.Logf("%s's console: %s", first.name, l.Text)
		case reIsReady.MatchString(l.Text):
			seq = append(seq, "Ready")
		}
	}
	want := []string{"start e2e-3", "not kept", "start " + from, "Ready"}
	if !containsInOrder(seq, []string{"start " + from, "back"}) {
		t.Errorf("%s's console after the upgrade began: %v; want the old system to say it is back after a failed trial", first.name, seq)
	}
	if !containsInOrder(seq, want) {
		t.Errorf("%s's console after the upgrade began: %v; want %v in that order (log in %s)", first.name, seq, want, logDir(t))
	} else {
		t.Logf("figures: %s: e2e-3 started to the rollback line: %s", first.name, secs(back.At-trial.At))
	}
	restored := func(s nodeState) bool {
		return s.ready && s.version == from && s.osImage == "cairn "+from && !s.unschedulable
	}
	if s := b.waitNode(first.name, 3*time.Minute, restored); !restored(s) {
		t.Errorf("node %s after its rollback: Ready %v, version %q, OS image %q, cordoned %v; want Ready at %s, not cordoned", first.name, s.ready, s.version, s.osImage, s.unschedulable, from)
	}
	nodes := b.mustNodes()
	now := b.boots()
	for _, n := range b.nodes {
		if n == first {
			continue
		}
		ns := u.Status.Node(n.name)
		if ns.Phase != upgrade.Pending && ns.Phase != "" {
			t.Errorf("Upgrade %s: node %s is %s; want it untouched (%s)", u.Metadata.Name, n.name, ns.Phase, upgrade.Pending)
		}
		if s := nodes[n.name]; !s.ready || s.version != from || s.unschedulable {
			t.Errorf("node %s: Ready %v, version %q, cordoned %v; want it untouched, Ready at %s", n.name, s.ready, s.version, s.unschedulable, from)
		}
		if now[n.name] != boots[n.name] {
			t.Errorf("node %s's init started %d times during the upgrade; want none", n.name, now[n.name]-boots[n.name])
		}
	}
	if t.Failed() {
		t.Logf("cairn upgrade said:\n%s", out)
	}
	b.noSecrets()
}

// containsInOrder says whether want appears in seq in order (not
// necessarily next to each other).
func containsInOrder(seq, want []string) bool {
	i := 0
	for _, s := range seq {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestUpgradePowerLoss is the third acceptance of issue 14: one server
// (embedded etcd) upgraded from e2e-1 to e2e-2 loses its power while it
// writes its other slot; powered on again on the same disk, it boots its
// old system and becomes Ready.
func TestUpgradePowerLoss(t *testing.T) {
	ctx := context.Background()
	v1, v2 := upgradeBuild(t, "e2e-1"), upgradeBuild(t, "e2e-2")
	b := startUpgradeSingle(t, ctx, v1, "e2e-1")
	n := b.nodes[0]
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cliDone := make(chan struct{})
	// The bundle from a URL on the bridge: the node fetches it over plain
	// HTTP, which is quicker under TCG than the upload through the
	// apiserver's proxy that TestUpgradeRolling takes.
	source := b.serveBundle(v2)
	go func() {
		defer close(cliDone)
		b.cli(cctx, "upgrade", "--image", source, "--health-timeout", "20m")
	}()
	writing := waitFor(t, ctx, n.m, 30*time.Minute, reWritingSlot)
	// The write of a slot takes seconds under TCG; a second in, it is
	// half done.
	time.Sleep(time.Second)
	n.m.Kill()
	t.Logf("killed QEMU a second after: %s", writing.Text)
	cancel()
	<-cliDone

	b.boot(ctx, n)
	start := b.waitBooted(ctx, n, "e2e-1")
	ready := waitFor(t, ctx, n.m, upgradeReady, reIsReady)
	t.Logf("figures: %s after the power loss: init %s (%s), node Ready %s after QEMU start", n.name, secs(start.At), start.Text, secs(ready.At))
	if s := b.waitNode(n.name, 3*time.Minute, func(s nodeState) bool { return s.ready && s.version == "e2e-1" }); !s.ready || s.version != "e2e-1" {
		t.Errorf("node %s after the power loss: Ready %v, version %q; want Ready at e2e-1", n.name, s.ready, s.version)
	}
	b.noSecrets()
	if t.Failed() {
		return
	}

	// The request lives in the cluster: the node takes its part up again
	// and ends it, now on e2e-2.
	var u upgrade.Upgrade
	back := time.Now()
	deadline := back.Add(45 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Add(-2*time.Minute).Before(deadline) {
		deadline = d.Add(-2 * time.Minute)
	}
	for ; ; time.Sleep(10 * time.Second) {
		all, err := b.upgrades()
		if err == nil && len(all) == 1 {
			for _, one := range all {
				u = one
			}
			if upgrade.Done(u.Status.Phase) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted upgrade has not ended %s after the node came back: %+v (%v)", time.Since(back).Round(time.Minute), u.Status, err)
		}
	}
	reportTimes(t, u)
	if l, err := n.m.WaitFor(ctx, regexp.MustCompile(`upgrade: \S+ was interrupted while`)); err == nil {
		t.Logf("%s's console: %s", n.name, l.Text)
	}
	if s := b.waitNode(n.name, 3*time.Minute, func(s nodeState) bool { return s.ready && s.version == "e2e-2" }); u.Status.Phase != upgrade.Succeeded || s.version != "e2e-2" {
		t.Errorf("the interrupted upgrade ended %s (%q), node %s at %q; want %s at e2e-2", u.Status.Phase, u.Status.Message, n.name, s.version, upgrade.Succeeded)
	}
	b.noSecrets()
}

// serveBundle serves dir's update bundle over HTTP on the bridge for the
// length of the test and returns its URL, for `cairn upgrade --image URL`.
func (b *upgradeBed) serveBundle(dir string) string {
	b.t.Helper()
	ln, err := b.ns.Listen("tcp", dsAddr+":0")
	if err != nil {
		b.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Join(dir, upgrade.BundleDir)))}
	go srv.Serve(ln)
	b.t.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("http://%s/", ln.Addr())
}

// waitNode waits up to d for node name's state to satisfy ok (the init
// annotates its Node a few seconds after it is Ready) and returns the
// last state read.
func (b *upgradeBed) waitNode(name string, d time.Duration, ok func(nodeState) bool) nodeState {
	var s nodeState
	for deadline := time.Now().Add(d); ; time.Sleep(3 * time.Second) {
		if nodes, err := b.nodeInfo(); err == nil {
			s = nodes[name]
			if ok(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			return s
		}
	}
}
