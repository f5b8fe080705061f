package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/image"
	"github.com/cairn-os/cairn/image/progress"
	"github.com/cairn-os/cairn/qemu/container"
)

// Up makes the cluster o describes, waits for it and prints the admin
// kubeconfig's path on stdout; its progress goes to stderr. Until the
// nodes are started, a failure (or ctx's end) removes everything made so
// far; after, the cluster is left running for a look at its logs.
func Up(ctx context.Context, stdout, stderr io.Writer, o Options) (err error) {
	began := time.Now()
	say := func(format string, a ...any) { fmt.Fprintf(stderr, "cairn cluster up: "+format+"\n", a...) }
	if err := os.MkdirAll(o.StateRoot, 0o755); err != nil {
		return err
	}
	unlock, err := lockRoot(o.StateRoot)
	if err != nil {
		return err
	}
	dir := clusterDir(o.StateRoot, o.Name)
	err = os.Mkdir(dir, 0o711)
	unlock()
	if errors.Is(err, os.ErrExist) {
		return existingCluster(o.StateRoot, o.Name)
	} else if err != nil {
		return err
	}
	if o.Platform == "container" {
		// The nodes' kubelets see this filesystem (disk.go); VMs have
		// disks of their own.
		if w := checkDisk(o.StateRoot); w != "" {
			say("%s", w)
		}
	}
	st := &state{Version: stateVersion, Name: o.Name, Created: time.Now().UTC().Truncate(time.Second),
		Platform: o.Platform, Datastore: o.Datastore, Board: o.Board,
		Network: container.Network{Namespace: namespaceOf(o.Name), HostLink: hostLinkOf(o.Name)}}
	if o.Debug {
		st.Cmdline = "cairn.debug"
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
	if unlock, err = lockRoot(o.StateRoot); err != nil {
		return err
	}
	subnet, err := chooseSubnet(o)
	if err != nil {
		unlock()
		return err
	}
	st.Network = container.Network{
		Namespace: namespaceOf(o.Name), Subnet: subnet, BridgeAddr: hostAddr(subnet, bridgeHost),
		HostLink: hostLinkOf(o.Name), HostAddr: hostAddr(subnet, hostHost),
	}
	switch o.VIP {
	case "":
	case "auto":
		st.VIP = hostAddr(subnet, vipHost)
	default:
		st.VIP = netip.MustParseAddr(o.VIP)
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

	for i := range o.Servers {
		st.Nodes = append(st.Nodes, newNode(o.Name, "server", i+1, hostAddr(subnet, serverHost0+1+i)))
	}
	for i := range o.Agents {
		n := newNode(o.Name, "agent", i+1, hostAddr(subnet, agentHost0+1+i))
		if i >= o.Agents-o.QEMUAgents {
			n.Platform = "qemu"
		}
		st.Nodes = append(st.Nodes, n)
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
	if err := files.WriteSecret(filepath.Join(dir, "token"), []byte(token+"\n")); err != nil {
		return err
	}
	endpoint := ""
	if o.Datastore != "embedded" {
		pw := make([]byte, 16)
		rand.Read(pw)
		kind := map[string]string{"postgres": container.Postgres, "mysql": container.MySQL, "etcd": container.Etcd}[o.Datastore]
		st.Store = &storeState{Datastore: container.Datastore{Kind: kind, Dir: filepath.Join(dir, "datastore"),
			Addr: st.Network.BridgeAddr, Password: hex.EncodeToString(pw), Log: filepath.Join(dir, "datastore.log")}}
		if err := files.WriteSecret(filepath.Join(dir, "datastore-password"), []byte(st.Store.Password+"\n")); err != nil {
			return err
		}
		if kind == container.Etcd {
			// TLS with client certificates: pods reach the bridge too.
			if st.Store.TLS, err = container.NewEtcdTLS(st.Store.Addr); err != nil {
				return err
			}
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
		say("datastore %s: listening on %s:%d (%.1f s); log %s", o.Datastore, st.Store.Addr, st.Store.Port(), time.Since(t).Seconds(), st.Store.Log)
	}

	if err := startNodes(ctx, stderr, dir, st, o, configs); err != nil {
		return err
	}
	kept = true

	kc, err := waitCluster(ctx, stderr, dir, st, token, o.Wait, o.Timeout, began)
	if err != nil {
		return err
	}
	st.Ready = time.Now().UTC().Truncate(time.Second)
	if err := st.save(dir); err != nil {
		return err
	}
	say("cluster %s: %s ready in %.0f s; cairn cluster down --name %s removes it", o.Name, plural(o.Servers, "server")+", "+plural(o.Agents, "agent"), time.Since(began).Seconds(), o.Name)
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

// existingCluster is the error of Up for a name that is taken.
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

func newNode(cluster, role string, i int, addr netip.Addr) nodeState {
	id := fmt.Sprintf("%c%d", role[0], i)
	return nodeState{ID: id, Name: cluster + "-" + id, Role: role, Addr: addr}
}

// chooseSubnet is o.Subnet, or the first /24 of 192.168.200-254 that
// neither this machine nor another cluster uses.
func chooseSubnet(o Options) (netip.Prefix, error) {
	used, err := container.HostNetworks()
	if err != nil {
		return netip.Prefix{}, err
	}
	ents, _ := os.ReadDir(o.StateRoot)
	for _, e := range ents {
		if e.IsDir() && e.Name() != o.Name {
			if st, err := loadState(filepath.Join(o.StateRoot, e.Name())); err == nil {
				used = append(used, st.Network.Subnet)
			}
		}
	}
	if o.Subnet != "" {
		p := netip.MustParsePrefix(o.Subnet)
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

// clusterImage is o.Image as it is, or out/BOARD built with the node
// components (an incremental build: seconds when nothing changed).
func clusterImage(ctx context.Context, stderr io.Writer, o Options) (string, error) {
	if o.Image != "" {
		m, err := image.ReadManifest(o.Image)
		if err != nil {
			return "", fmt.Errorf("--image %s: %w (give a directory `cairn build` wrote)", o.Image, err)
		}
		if m.Components == nil {
			return "", fmt.Errorf("--image %s holds no node components; build it with --components", o.Image)
		}
		if m.Board != o.Board {
			return "", fmt.Errorf("--image %s is for %s, not --board %s", o.Image, m.Board, o.Board)
		}
		return filepath.Abs(o.Image)
	}
	arch := map[string]string{"qemu-x86_64": "amd64", "qemu-arm64": "arm64"}[o.Board]
	if arch == "" {
		arch = runtime.GOARCH
	}
	if _, err := os.Stat(filepath.Join(o.Components, "linux-"+arch, "usr/bin/cairn-node")); err != nil {
		return "", fmt.Errorf("no node components for %s in %s: run `make components-%s` (or give --components)", arch, o.Components, arch)
	}
	out, err := filepath.Abs(filepath.Join("out", o.Board))
	if err != nil {
		return "", err
	}
	t := time.Now()
	_, err = image.Build(ctx, image.Options{Board: o.Board, Kernel: o.Kernel, Out: out, Components: o.Components,
		Progress: progress.New(stderr, "cairn cluster up: build: ")})
	if err != nil {
		return "", fmt.Errorf("building the image (cairn build --board %s --components %s -o %s): %w", o.Board, o.Components, out, err)
	}
	fmt.Fprintf(stderr, "cairn cluster up: image %s built (%.1f s)\n", out, time.Since(t).Seconds())
	return out, nil
}

// startNodes starts every node, recording each process as it starts.
func startNodes(ctx context.Context, stderr io.Writer, dir string, st *state, o Options, configs map[string][]byte) error {
	var system, initBin string
	if st.Platform == "container" {
		// The cluster's copy of the system image, every node's slot A (a
		// rebuild of the image writes none of them), and its init, the
		// nodes' launcher.
		system, initBin = filepath.Join(dir, "system.sqfs"), filepath.Join(dir, "init")
		t := time.Now()
		if err := container.SystemImage(st.Image, system); err != nil {
			return err
		}
		if err := container.ExtractInit(ctx, system, initBin); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "cairn cluster up: system image copied to %s (%.1f s)\n", system, time.Since(t).Seconds())
	}
	for i := range st.Nodes {
		n := &st.Nodes[i]
		ndir := filepath.Join(dir, "nodes", n.ID)
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return err
		}
		if err := files.WriteSecret(filepath.Join(ndir, "config.yaml"), configs[n.ID]); err != nil {
			return err
		}
		var err error
		platform := st.platformOf(n)
		switch platform {
		case "container":
			disk := filepath.Join(ndir, "disk")
			if err := container.NewDisk(disk, system, configs[n.ID], o.Archives); err != nil {
				return err
			}
			netns, err := st.Network.AddPeer(ctx, n.ID)
			if err != nil {
				return err
			}
			n.Proc, err = container.Node{Init: initBin, Disk: disk, Netns: netns, Log: n.Log, Cmdline: strings.TrimSpace(containerCmdline + " " + st.Cmdline)}.Start()
		case "qemu":
			n.Proc, err = startVM(ctx, dir, st, n, o, configs[n.ID])
		}
		if serr := st.save(dir); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("starting %s: %w", n.Name, err)
		}
		fmt.Fprintf(stderr, "cairn cluster up: node %s: started (%s %s, %s); console %s\n", n.Name, platform, n.Role, n.Addr, n.Log)
	}
	return nil
}
