package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/image"
	"github.com/cairn-os/cairn/image/progress"
	"github.com/cairn-os/cairn/qemu"
	"github.com/cairn-os/cairn/qemu/container"
)

// clusterUp makes the cluster o describes and waits for it. Until the
// nodes are started, a failure removes everything made so far; after, the
// cluster is left for a look at its logs.
func clusterUp(ctx context.Context, stdout, stderr io.Writer, o *clusterOptions) (err error) {
	began := time.Now()
	// Ctrl-C while the cluster is made removes it; while it is awaited,
	// leaves it running (down removes it).
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	say := func(format string, a ...any) { fmt.Fprintf(stderr, "cairn cluster up: "+format+"\n", a...) }
	if err := os.MkdirAll(o.stateRoot, 0o755); err != nil {
		return err
	}
	unlock, err := lockRoot(o.stateRoot)
	if err != nil {
		return err
	}
	dir := clusterDir(o.stateRoot, o.name)
	err = os.Mkdir(dir, 0o711)
	unlock()
	if errors.Is(err, os.ErrExist) {
		return existingCluster(o.stateRoot, o.name)
	} else if err != nil {
		return err
	}
	st := &clusterState{Version: stateVersion, Name: o.name, Created: time.Now().UTC().Truncate(time.Second),
		Platform: o.platform, Datastore: o.datastore, Board: o.board, Cmdline: "cairn.platform=container",
		Network: container.Network{Namespace: namespaceOf(o.name), HostLink: hostLinkOf(o.name)}}
	if o.platform == "qemu" {
		st.Cmdline = ""
	}
	if o.debug {
		st.Cmdline = strings.TrimSpace(st.Cmdline + " cairn.debug")
	}
	kept := false
	defer func() {
		if !kept {
			say("removing what was made")
			if derr := teardown(context.Background(), stderr, dir, st); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()
	if err := st.save(dir); err != nil {
		return err
	}
	if st.Image, err = clusterImage(ctx, stderr, o); err != nil {
		return err
	}

	// The network: chosen and made under the lock, so two clusters
	// started at once never pick one subnet.
	if unlock, err = lockRoot(o.stateRoot); err != nil {
		return err
	}
	subnet, err := chooseSubnet(o)
	if err != nil {
		unlock()
		return err
	}
	st.Network = container.Network{
		Namespace: namespaceOf(o.name), Subnet: subnet, BridgeAddr: hostAddr(subnet, bridgeHost),
		HostLink: hostLinkOf(o.name), HostAddr: hostAddr(subnet, hostHost),
	}
	switch o.vip {
	case "":
	case "auto":
		st.VIP = hostAddr(subnet, vipHost)
	default:
		st.VIP = netip.MustParseAddr(o.vip)
	}
	if err := st.save(dir); err != nil {
		unlock()
		return err
	}
	err = st.Network.Create(ctx)
	unlock()
	if err != nil {
		return err
	}
	say("network %s: bridge %s in the namespace %s; this machine is %s on %s", subnet, st.Network.BridgeAddr, st.Network.Namespace, st.Network.HostAddr, st.Network.HostLink)

	for i := range o.servers {
		st.Nodes = append(st.Nodes, newNode(o.name, "server", i+1, hostAddr(subnet, serverHost0+1+i)))
	}
	for i := range o.agents {
		st.Nodes = append(st.Nodes, newNode(o.name, "agent", i+1, hostAddr(subnet, agentHost0+1+i)))
	}
	for i := range st.Nodes {
		st.Nodes[i].Log = filepath.Join(dir, "nodes", st.Nodes[i].ID, "console.log")
	}

	// Secrets: in 0600 files of the cluster directory and the nodes'
	// configs, never on a command line.
	token, err := join.Generate()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	endpoint := ""
	if o.datastore != "embedded" {
		pw := make([]byte, 16)
		rand.Read(pw)
		kind := map[string]string{"postgres": container.Postgres, "mysql": container.MySQL, "etcd": container.Etcd}[o.datastore]
		st.Store = &storeState{Datastore: container.Datastore{Kind: kind, Dir: filepath.Join(dir, "datastore"),
			Addr: st.Network.BridgeAddr, Password: hex.EncodeToString(pw), Log: filepath.Join(dir, "datastore.log")}}
		if err := os.WriteFile(filepath.Join(dir, "datastore-password"), []byte(st.Store.Password+"\n"), 0o600); err != nil {
			return err
		}
		endpoint = st.Store.Endpoint()
	}
	configs, err := nodeConfigs(st, token, endpoint)
	if err != nil {
		return err
	}
	if err := st.save(dir); err != nil {
		return err
	}

	if st.Store != nil {
		t := time.Now()
		st.Store.Proc, err = st.Store.Start(ctx, &st.Network)
		if serr := st.save(dir); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("the datastore: %w", err)
		}
		say("datastore %s: listening on %s:%d (%.1f s); log %s", o.datastore, st.Store.Addr, st.Store.Port(), time.Since(t).Seconds(), st.Store.Log)
	}

	if err := startNodes(ctx, stderr, dir, st, o, configs); err != nil {
		return err
	}
	kept = true

	kc, err := waitCluster(ctx, stderr, dir, st, token, o.wait, o.timeout, began)
	if err != nil {
		return err
	}
	st.Ready = time.Now().UTC().Truncate(time.Second)
	if err := st.save(dir); err != nil {
		return err
	}
	say("cluster %s: %s ready in %.0f s; cairn cluster down --name %s removes it", o.name, plural(o.servers, "server")+", "+plural(o.agents, "agent"), time.Since(began).Seconds(), o.name)
	fmt.Fprintln(stdout, kc)
	return nil
}

// lockRoot holds an exclusive lock on the state root until unlock.
func lockRoot(root string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// existingCluster is the error of `up` for a name that is taken.
func existingCluster(root, name string) error {
	dir := clusterDir(root, name)
	st, err := loadState(dir)
	if err != nil {
		return fmt.Errorf("a cluster named %s exists already (%s, unreadable: %v); remove it with: cairn cluster down --name %s", name, dir, err, name)
	}
	running := 0
	for _, n := range st.Nodes {
		if n.Proc.Alive() {
			running++
		}
	}
	return fmt.Errorf("a cluster named %s exists already (%s, created %s, %d of %d nodes running, kubeconfig %s); use it, or remove it first with: cairn cluster down --name %s",
		name, st.Platform, st.Created.Local().Format("2006-01-02 15:04"), running, len(st.Nodes), filepath.Join(dir, "kubeconfig"), name)
}

func hostAddr(p netip.Prefix, host int) netip.Addr {
	a := p.Masked().Addr().As4()
	a[3] = byte(host)
	return netip.AddrFrom4(a)
}

func newNode(cluster, role string, i int, addr netip.Addr) nodeState {
	id := fmt.Sprintf("%c%d", role[0], i)
	return nodeState{ID: id, Name: cluster + "-" + id, Role: role, Addr: addr}
}

// chooseSubnet is --subnet, or the first /24 of 192.168.200-254 that
// neither this machine nor another cluster uses.
func chooseSubnet(o *clusterOptions) (netip.Prefix, error) {
	used, err := container.HostNetworks()
	if err != nil {
		return netip.Prefix{}, err
	}
	ents, _ := os.ReadDir(o.stateRoot)
	for _, e := range ents {
		if e.IsDir() && e.Name() != o.name {
			if st, err := loadState(filepath.Join(o.stateRoot, e.Name())); err == nil {
				used = append(used, st.Network.Subnet)
			}
		}
	}
	if o.subnet != "" {
		p := netip.MustParsePrefix(o.subnet)
		for _, u := range used {
			if p.Overlaps(u) {
				return netip.Prefix{}, fmt.Errorf("--subnet %s overlaps %s, which this machine or another cluster uses", p, u)
			}
		}
		return p, nil
	}
	var candidates []netip.Prefix
	for i := 200; i <= 254; i++ {
		candidates = append(candidates, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 24))
	}
	p, err := container.FreeSubnet(candidates, used)
	if err != nil {
		return p, fmt.Errorf("%w; give one with --subnet", err)
	}
	return p, nil
}

// clusterImage is --image as it is, or out/BOARD built with the node
// components (an incremental build: seconds when nothing changed).
func clusterImage(ctx context.Context, stderr io.Writer, o *clusterOptions) (string, error) {
	if o.image != "" {
		var m struct {
			Board      string          `json:"board"`
			Components json.RawMessage `json:"components"`
		}
		data, err := readBounded(filepath.Join(o.image, "manifest.json"), 1<<20)
		if err == nil {
			err = json.Unmarshal(data, &m)
		}
		if err != nil {
			return "", fmt.Errorf("--image %s: %w (give a directory `cairn build` wrote)", o.image, err)
		}
		if len(m.Components) == 0 || string(m.Components) == "null" {
			return "", fmt.Errorf("--image %s holds no node components; build it with --components", o.image)
		}
		if m.Board != o.board {
			return "", fmt.Errorf("--image %s is for %s, not --board %s", o.image, m.Board, o.board)
		}
		return filepath.Abs(o.image)
	}
	arch := map[string]string{"qemu-x86_64": "amd64", "qemu-arm64": "arm64"}[o.board]
	if arch == "" {
		arch = runtime.GOARCH
	}
	if _, err := os.Stat(filepath.Join(o.comps, "linux-"+arch, "usr/bin/cairn-node")); err != nil {
		return "", fmt.Errorf("no node components for %s in %s: run `make components-%s` (or give --components)", arch, o.comps, arch)
	}
	out, err := filepath.Abs(filepath.Join("out", o.board))
	if err != nil {
		return "", err
	}
	t := time.Now()
	_, err = image.Build(ctx, image.Options{Board: o.board, Kernel: o.kernel, Out: out, Components: o.comps,
		Progress: progress.New(stderr, "cairn cluster up: build: ")})
	if err != nil {
		return "", fmt.Errorf("building the image (cairn build --board %s --components %s -o %s): %w", o.board, o.comps, out, err)
	}
	fmt.Fprintf(stderr, "cairn cluster up: image %s built (%.1f s)\n", out, time.Since(t).Seconds())
	return out, nil
}

// nodeConfigs renders every node's cloud-config and checks them, alone
// and together, as `cairn validate` would.
func nodeConfigs(st *clusterState, token, endpoint string) (map[string][]byte, error) {
	server := "https://" + st.Nodes[0].Addr.String() + ":6443"
	if st.VIP.IsValid() {
		server = "https://" + st.VIP.String() + ":6443"
	}
	out := map[string][]byte{}
	var loaded []*config.Config
	for _, n := range st.Nodes {
		var b strings.Builder
		// A default route (nowhere beyond the bridge): kube-proxy's
		// Service addresses need one to be routed at all.
		fmt.Fprintf(&b, "#cloud-config\nhostname: %s\nnetwork:\n  version: 2\n  ethernets:\n    eth0:\n      addresses: [%s/%d]\n      routes: [{to: default, via: %s}]\n",
			n.Name, n.Addr, st.Network.Subnet.Bits(), st.Network.BridgeAddr)
		fmt.Fprintf(&b, "kubernetes:\n  role: %s\n  token: %q\n", n.Role, token)
		if n.Role == "server" {
			if endpoint != "" {
				fmt.Fprintf(&b, "  datastore-endpoint: %q\n", endpoint)
			}
			if st.VIP.IsValid() {
				fmt.Fprintf(&b, "  vip: %s\n", st.VIP)
			}
		} else {
			fmt.Fprintf(&b, "  server: %s\n", server)
		}
		data := []byte(b.String())
		c, diags := config.Load(config.Source{Name: n.Name + ".yaml", Data: data})
		if diags.HasErrors() {
			return nil, fmt.Errorf("the config cairn made for %s does not validate (a bug in cairn): %v", n.Name, diags)
		}
		loaded = append(loaded, c)
		out[n.ID] = data
	}
	if diags := config.CheckCluster(loaded); diags.HasErrors() {
		return nil, fmt.Errorf("the configs cairn made do not agree (a bug in cairn): %v", diags)
	}
	return out, nil
}

// startNodes starts every node, recording each process as it starts.
func startNodes(ctx context.Context, stderr io.Writer, dir string, st *clusterState, o *clusterOptions, configs map[string][]byte) error {
	var system string
	if st.Platform == "container" {
		system = filepath.Join(dir, "system")
		t := time.Now()
		if err := container.UnpackSystem(ctx, filepath.Join(st.Image, "initramfs.img"), system); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "cairn cluster up: system image unpacked into %s (%.1f s)\n", system, time.Since(t).Seconds())
	}
	for i := range st.Nodes {
		n := &st.Nodes[i]
		ndir := filepath.Join(dir, "nodes", n.ID)
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(ndir, "config.yaml"), configs[n.ID], 0o600); err != nil {
			return err
		}
		var err error
		switch st.Platform {
		case "container":
			root := filepath.Join(ndir, "root")
			if err := container.NodeRoot(system, root, configs[n.ID]); err != nil {
				return err
			}
			for _, a := range o.archives {
				if err := addArchive(a, filepath.Join(root, "usr/share/cairn/images")); err != nil {
					return err
				}
			}
			netns, err := st.Network.AddPeer(ctx, n.ID)
			if err != nil {
				return err
			}
			n.Proc, err = container.Node{Init: filepath.Join(system, "sbin/init"), Root: root, Netns: netns, Log: n.Log, Cmdline: st.Cmdline}.Start()
		case "qemu":
			n.Proc, err = startVM(ctx, dir, st, n, o, configs[n.ID])
		}
		if serr := st.save(dir); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("starting %s: %w", n.Name, err)
		}
		fmt.Fprintf(stderr, "cairn cluster up: node %s: started (%s %s, %s); console %s\n", n.Name, st.Platform, n.Role, n.Addr, n.Log)
	}
	return nil
}

// startVM makes the node's seed and TAP device and starts `cairn cluster
// vm`, which runs the node's QEMU until it is told to stop.
func startVM(ctx context.Context, dir string, st *clusterState, n *nodeState, o *clusterOptions, cfg []byte) (container.Proc, error) {
	ndir := filepath.Join(dir, "nodes", n.ID)
	if err := qemu.MakeSeedISO(ctx, filepath.Join(ndir, "seed.iso"), qemu.Seed{UserData: cfg}); err != nil {
		return container.Proc{}, err
	}
	if _, err := st.Network.AddTAP(ctx, n.ID); err != nil {
		return container.Proc{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return container.Proc{}, err
	}
	cmd := exec.Command(self, "cluster", "vm", "--state-dir", filepath.Dir(dir), "--name", st.Name, "--node", n.ID,
		"--memory", fmt.Sprint(o.memory), "--smp", fmt.Sprint(o.smp))
	cmd.Dir = "/"
	return container.StartDetached(cmd, filepath.Join(ndir, "vm.log"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// addArchive puts an image archive into a node's image directory: a hard
// link when it can, else a copy.
func addArchive(src, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.LimitReader(in, maxArchiveSize)); err != nil {
		out.Close()
		return fmt.Errorf("copying %s into a node: %w", src, err)
	}
	return out.Close()
}
