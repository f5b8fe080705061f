package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/init/node/nodeclaim"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/node/upgrader"
	"github.com/cairn-os/cairn/init/supervise"
)

// ImagesDir holds the container images every node imports at boot (the
// pause image, the add-ons', any the image builder was given).
const ImagesDir = layout.ImagesDir

// worker runs what makes a machine a Kubernetes node, on agents and
// servers alike: containerd with the images the system image carries,
// the kubelet (its client certificate by TLS bootstrap), kube-proxy and
// the flannel pod network.
type worker struct {
	o    Options
	k    *config.Kubernetes
	l    render.Layout
	node render.Node
	// apiserver is how this node reaches the control plane: its own
	// apiserver on a server, the local load balancer on an agent.
	apiserver string
	// servingCA and clientCA are the cluster's CAs (PEM).
	servingCA, clientCA []byte
	// secret is the secret of the token agents join with (the agent token,
	// else the server token); the kubelet's bootstrap token derives from it.
	secret string
	// kubeletNeeds are services the kubelet waits for.
	kubeletNeeds []string
	// first is when the worker started, for the Ready line.
	first time.Time
	// serve is set on a server: its upgrade file service.
	serve *upgrader.ServeConfig
	// issue is set on a server: it mints the kubelet's client certificate
	// (kubeletClientCert). An agent claims its name instead: it asks for
	// one with its node secret and the agent token (nodeclaim).
	issue func(context.Context) ([]byte, error)
}

// kubeletCert is the kubelet's current client certificate and key, which
// kube-proxy and flannel use too.
func (w *worker) kubeletCert() string {
	return filepath.Join(w.l.KubeletDir, "pki", "kubelet-client-current.pem")
}

// kubeletTLS trusts the cluster's serving CA and presents the kubelet's
// current client certificate, read at each handshake (it rotates).
func (w *worker) kubeletTLS() (*tls.Config, error) {
	cfg, err := kube.Pinned(w.servingCA)
	if err != nil {
		return nil, err
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		pair, err := tls.LoadX509KeyPair(w.kubeletCert(), w.kubeletCert())
		return &pair, err
	}
	return cfg, nil
}

// runUpgrades runs the node's side of upgrades, with the kubelet's
// credentials once it has them, until ctx ends.
func (w *worker) runUpgrades(ctx context.Context) {
	tlsCfg, err := w.kubeletTLS()
	if err != nil {
		w.o.Printf("upgrade: %v", err)
		return
	}
	for {
		if _, err := os.Stat(w.kubeletCert()); err == nil {
			break
		}
		if !supervise.Sleep(ctx, 2*time.Second) {
			return
		}
	}
	blobTLS := tlsCfg.Clone()
	blobTLS.ServerName = "kubernetes"
	upgrader.Run(ctx, upgrader.Node{
		Name:     w.node.Name,
		System:   w.o.System,
		API:      kube.New(w.apiserver, kube.Options{TLS: tlsCfg}),
		BlobTLS:  blobTLS,
		Services: w.o.Services,
		DataDir:  w.l.DataDir,
		Serve:    w.serve,
		Reboot:   w.o.Reboot,
		Printf:   w.o.Printf,
	})
}

func (w *worker) service(c render.Command) supervise.Service { return componentService(w.o, c) }

// start writes the node's files and hands containerd to the supervisor;
// the images are imported and the kubelet, kube-proxy and flannel started
// once containerd answers.
func (w *worker) start(ctx context.Context) error {
	w.first = time.Now()
	for _, d := range []string{w.l.DataDir, w.l.CertDir, w.l.KubeconfigDir, w.l.KubeletDir, w.l.ContainerdDir, render.CNIConfDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	for _, d := range []string{w.l.ContainerdDir, w.l.KubeletDir} {
		if err := w.needsOwnFS(d); err != nil {
			return err
		}
	}
	if err := machineID(w.l.DataDir); err != nil {
		return err
	}
	w.forwarding()
	files := []render.File{
		{Path: w.l.Cert("server-ca.crt"), Mode: 0o644, Data: w.servingCA},
		{Path: w.l.Kubeconfig("bootstrap-kubelet"), Mode: 0o600, Data: w.bootstrapKubeconfig()},
		render.NodeKubeconfig(w.node, w.apiserver),
	}
	if len(w.clientCA) > 0 {
		files = append(files, render.File{Path: w.l.Cert("client-ca.crt"), Mode: 0o644, Data: w.clientCA})
	}
	if err := writeFiles(files); err != nil {
		return err
	}
	if !hasCapability(unix.CAP_SYS_RESOURCE) {
		w.node.NoLowerOOMScore = true
		w.o.Printf("node: this machine does not let processes lower their OOM score (no CAP_SYS_RESOURCE); containers keep containerd's instead")
	}
	ctrd, err := render.Containerd(w.o.Config, w.node)
	if err != nil {
		return err
	}
	if err := writeFiles(ctrd.Files); err != nil {
		return err
	}
	svc := w.service(*ctrd)
	svc.Ready = supervise.ReadyFile(render.ContainerdSocket)
	if err := w.o.Services.Start(svc); err != nil {
		return err
	}
	supervise.Go("node: images and kubelet", func() {
		cert := make(chan error, 1)
		supervise.Go("node: kubelet certificate", func() { cert <- w.ensureKubeletCert(ctx) })
		if _, err := w.o.Services.Wait(ctx, "containerd", func(st supervise.Status) bool { return st.State == supervise.Ready }); err != nil {
			return
		}
		// On a server the kubelet waits for the local apiserver, whose
		// start the archives' unpacking would slow down (under TCG, by
		// minutes): the pause image, every pod's sandbox, comes first, the
		// others once the Node is Ready. An agent has no apiserver to wait
		// for, and imports them all before its kubelet, so no pod of its
		// waits in an image pull's back-off for one.
		first := func(string) bool { return true }
		if len(w.kubeletNeeds) > 0 {
			first = func(name string) bool { return name == sandboxArchive }
		}
		rest := w.importImages(ctx, first)
		select {
		case err := <-cert:
			if err != nil {
				if ctx.Err() == nil {
					w.o.Printf("node: %v; the kubelet does not start", err)
				}
				return
			}
		case <-ctx.Done():
			return
		}
		if err := w.startKubelet(); err != nil {
			w.o.Printf("node: %v", err)
			return
		}
		nodeReady := make(chan struct{})
		supervise.Go("node: images", func() {
			if len(rest) == 0 {
				return
			}
			// The rest wait for the Node to be Ready: its pod network
			// (kube-controller-manager's CIDR, flannel) and the kubelet
			// would otherwise share the CPU with the unpacking, which
			// under TCG took 140 s of it. A Node that is not Ready by
			// restImportWait gets its images all the same.
			wait := time.NewTimer(restImportWait)
			defer wait.Stop()
			select {
			case <-nodeReady:
			case <-wait.C:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				return
			}
			w.importImages(ctx, func(name string) bool { return slices.Contains(rest, name) })
		})
		supervise.Go("node: kubelet certificate watch", func() { w.keepKubeletCert(ctx) })
		supervise.Go("node: upgrades", func() { w.runUpgrades(ctx) })
		w.reportReady(ctx)
		close(nodeReady)
	})
	return nil
}

// nodeSysctls are what pods and Services need from the kernel: routing
// between interfaces, and bridged pod traffic through kube-proxy's rules.
var nodeSysctls = []struct{ key, val string }{
	{"net/ipv4/ip_forward", "1"},
	{"net/ipv6/conf/all/forwarding", "1"},
	{"net/bridge/bridge-nf-call-iptables", "1"},
	{"net/bridge/bridge-nf-call-ip6tables", "1"},
}

// nodeModules are the kernel modules the node's networking needs loaded
// before its components start, each with the /proc/sys path it brings.
// nf_conntrack would come with kube-proxy's first rules, but kube-proxy
// sets its conntrack timeouts before it writes any, and exits when their
// files are not there yet.
var nodeModules = []struct{ name, sysctl string }{
	{"br_netfilter", "/proc/sys/net/bridge"},
	{"nf_conntrack", "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established"},
}

// forwarding loads nodeModules (through the init's modprobe) and sets
// nodeSysctls, saying which could not be set.
func (w *worker) forwarding() {
	for _, m := range nodeModules {
		if _, err := os.Stat(m.sysctl); err == nil {
			continue
		}
		cmd := exec.Command("/sbin/modprobe", m.name)
		cmd.Env = baseEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			w.o.Printf("node: loading %s: %v %s", m.name, err, brief.LastLine(out, 300))
		}
	}
	for _, s := range nodeSysctls {
		if err := os.WriteFile("/proc/sys/"+s.key, []byte(s.val), 0); err != nil {
			w.o.Printf("node: setting %s: %v; Services between pods on one node may not work", strings.ReplaceAll(s.key, "/", "."), err)
		}
	}
}

// fallbackNameserver is what pods resolve outside names with when the
// node has no nameserver of its own, as k3s does.
const fallbackNameserver = "8.8.8.8"

// podResolvConf is the resolv.conf the kubelet gives pods (and CoreDNS
// its upstreams from): the node's own when it names a nameserver that is
// not a loopback address (CoreDNS would forward to itself), else one
// naming fallbackNameserver, written to /run/cairn, with a console line.
func (w *worker) podResolvConf() string {
	own := w.l.ResolvConf
	data, _ := files.Read(own, 64<<10)
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip, err := netip.ParseAddr(f[1]); err == nil && !ip.IsLoopback() {
				return own
			}
		}
	}
	path := "/run/cairn/pods-resolv.conf"
	doc := "# Written by cairn: the node names no usable nameserver; pods fall back to " + fallbackNameserver + " as k3s's do.\nnameserver " + fallbackNameserver + "\n"
	if err := writeFile(path, []byte(doc), 0o644); err != nil {
		w.o.Printf("node: %v", err)
		return own
	}
	w.o.Printf("node: %s names no usable nameserver; pods and CoreDNS resolve outside names through %s (as k3s does); give the network nameservers to change that", own, fallbackNameserver)
	return path
}

// hasCapability reports whether this process has capability c in its
// effective set (from /proc/self/status; true when that is unreadable).
func hasCapability(c int) bool {
	data, err := files.Read("/proc/self/status", 64<<10)
	if err != nil {
		return true
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			var eff uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &eff); err != nil {
				return true
			}
			return eff&(1<<uint(c)) != 0
		}
	}
	return true
}

// machineID writes /etc/machine-id, the node's identity for the kubelet
// (its systemUUID and machineID), from DataDir/machine-id, made once: the
// same across reboots when DataDir is on STATE.
func machineID(dataDir string) error {
	if _, err := os.Stat("/etc/machine-id"); err == nil {
		return nil
	}
	kept := filepath.Join(dataDir, "machine-id")
	id, err := files.Read(kept, 64)
	id = bytes.TrimSpace(id)
	if err != nil || len(id) != 32 {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		id = []byte(hex.EncodeToString(b))
		if err := writeFile(kept, append(id, '\n'), 0o644); err != nil {
			return err
		}
	}
	return writeFile("/etc/machine-id", append(id, '\n'), 0o444)
}

// needsOwnFS mounts a tmpfs on dir when it lies on an overlay file system
// (a live boot or the container platform, with no STATE partition):
// containerd's overlay snapshots cannot live on overlayfs.
func (w *worker) needsOwnFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	const overlayfsMagic = 0x794c7630
	if st.Type != overlayfsMagic {
		return nil
	}
	if err := unix.Mount("cairn-"+filepath.Base(dir), dir, "tmpfs", unix.MS_NODEV|unix.MS_NOSUID, "mode=0700"); err != nil {
		return fmt.Errorf("mounting a tmpfs on %s: %w", dir, err)
	}
	w.o.Printf("node: %s is in memory (no STATE partition); images and pods start afresh at every boot", dir)
	return nil
}

// bootstrapKubeconfig is the agents' bootstrap token (derived from the
// agent token, or from the server token under the agents' label), good
// only for asking for a client certificate (group system:bootstrappers
// and no other), as a kubeconfig for the kubelet: the init asks for the
// kubelet's first certificate itself, with its node secret
// (ensureKubeletCert), so the kubelet uses this only if it finds its
// certificate lapsed when it starts, and the servers deny what it asks
// then (it carries no node secret's proof).
func (w *worker) bootstrapKubeconfig() []byte {
	id, secret := join.AgentBootstrapToken(w.secret)
	return render.KubeconfigDoc(w.apiserver, w.l.Cert("server-ca.crt"), "kubelet-bootstrap", "token: "+id+"."+secret)
}

// kubeletKubeconfig is the kubelet's own kubeconfig: its client
// certificate in its certificate store (the file the kubelet renews).
func (w *worker) kubeletKubeconfig() []byte {
	return render.KubeconfigDoc(w.apiserver, w.l.Cert("server-ca.crt"), "kubelet",
		"client-certificate: "+w.kubeletCert(), "client-key: "+w.kubeletCert())
}

// Asking for the kubelet's client certificate: growing delays while the
// servers cannot be reached or decide nothing, and claimDeniedRetry after
// they denied the name (until someone frees it).
var (
	claimRetryFirst  = 2 * time.Second
	claimRetryMax    = 30 * time.Second
	claimDeniedRetry = 2 * time.Minute
	// certCheckEvery is how often the worker looks whether the kubelet
	// let its certificate come within keptMargin of its end.
	certCheckEvery = 10 * time.Minute
)

// ensureKubeletCert gives the kubelet a client certificate before it
// starts, unless it has one of this node's that is valid for more than
// keptMargin: a server mints it (issue); an agent claims its name with its
// node secret. It writes the kubelet's kubeconfig naming it, so the
// kubelet never asks with the bootstrap token itself.
func (w *worker) ensureKubeletCert(ctx context.Context) error {
	name := kubeletName(w.node.Name)
	if _, ok := validKubeletCert(w.kubeletCert(), name, w.clientCA); !ok {
		var data []byte
		var err error
		if w.issue != nil {
			data, err = w.issue(ctx)
		} else {
			data, err = w.claimKubeletCert(ctx, name)
		}
		if err != nil {
			return err
		}
		if err := storeKubeletCert(filepath.Dir(w.kubeletCert()), data, time.Now()); err != nil {
			return err
		}
	}
	return writeFile(w.l.Kubeconfig("kubelet"), w.kubeletKubeconfig(), 0o600)
}

// keepKubeletCert gives the kubelet a new certificate the way
// ensureKubeletCert does when the kubelet let its own come within
// keptMargin of its end (it renews at 70 to 90% of its life, so only
// after it could not reach the cluster for months): the kubelet, which
// exits once its certificate has lapsed, then starts with the new one.
func (w *worker) keepKubeletCert(ctx context.Context) {
	for supervise.Sleep(ctx, certCheckEvery) {
		if _, ok := validKubeletCert(w.kubeletCert(), kubeletName(w.node.Name), w.clientCA); ok {
			continue
		}
		w.o.Printf("node: the kubelet's client certificate is lapsing and it did not renew it; asking for a new one")
		if err := w.ensureKubeletCert(ctx); err != nil && ctx.Err() == nil {
			w.o.Printf("node: %v", err)
		}
	}
}

// claimKubeletCert asks the servers, with the agents' bootstrap token, for
// the kubelet's client certificate of name, claiming the name with this
// node's secret (made once, kept on STATE). It tries until the servers
// approve or ctx ends, saying once why they do not.
func (w *worker) claimKubeletCert(ctx context.Context, name string) ([]byte, error) {
	secret, created, err := nodeclaim.Load(w.l.DataDir)
	if err != nil {
		return nil, fmt.Errorf("this node's secret: %w", err)
	}
	if created {
		w.o.Printf("node: made this node's secret (%s, mode 0600): it proves to the servers that the name %s is this machine's; a machine that loses it joins as %s again only once the Node %s is deleted",
			filepath.Join(w.l.DataDir, nodeclaim.SecretFile), name, name, name)
	}
	tlsCfg, err := kube.Pinned(w.servingCA)
	if err != nil {
		return nil, err
	}
	id, tok := join.AgentBootstrapToken(w.secret)
	api := kube.New(w.apiserver, kube.Options{TLS: tlsCfg, Bearer: id + "." + tok})
	defer api.CloseIdleConnections()
	said := ""
	for delay := claimRetryFirst; ; delay = min(delay*2, claimRetryMax) {
		data, err := nodeclaim.Request(ctx, api, name, secret)
		if err == nil {
			if said != "" {
				w.o.Printf("node: the servers approved the name %s for this node's secret", name)
			}
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, errStopped
		}
		wait, line := delay, fmt.Sprintf("node: asking the servers for the kubelet's client certificate: %s; retrying", brief.Err(err))
		var denied *nodeclaim.DeniedError
		if errors.As(err, &denied) {
			wait = claimDeniedRetry
			msg := denied.Message
			if len(msg) > 400 {
				msg = msg[:400] + "…"
			}
			line = fmt.Sprintf("node: the servers refuse this node the name %s: %s. The kubelet does not start; asking again every %s", name, strings.ReplaceAll(msg, "\n", " "), wait)
		}
		if line != said {
			said = line
			w.o.Printf("%s", line)
		}
		if !supervise.Sleep(ctx, wait) {
			return nil, errStopped
		}
	}
}

// validKubeletCert says whether the kubelet's certificate and key at path
// are a client certificate of node's, of the client CA clientCA (not
// checked when empty), valid for more than keptMargin, and until when.
func validKubeletCert(path, node string, clientCA []byte) (time.Time, bool) {
	data, err := files.Read(path, 1<<20)
	if err != nil {
		return time.Time{}, false
	}
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		return time.Time{}, false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || cert.Subject.CommonName != "system:node:"+node || time.Until(cert.NotAfter) < keptMargin {
		return time.Time{}, false
	}
	if len(clientCA) > 0 {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(clientCA) {
			return time.Time{}, false
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return time.Time{}, false
		}
	}
	return cert.NotAfter, true
}

// storeKubeletCert puts a certificate and key (one PEM document) in the
// kubelet's certificate store in dir, as the kubelet does:
// kubelet-client-TIME.pem (0600) and kubelet-client-current.pem, a
// symbolic link to it, replaced in one rename.
func storeKubeletCert(dir string, data []byte, now time.Time) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	file := filepath.Join(dir, "kubelet-client-"+now.UTC().Format("2006-01-02-15-04-05")+".pem")
	if err := files.WriteSecret(file, data); err != nil {
		return err
	}
	current := filepath.Join(dir, "kubelet-client-current.pem")
	tmp := current + ".cairn"
	os.Remove(tmp)
	if err := os.Symlink(file, tmp); err != nil {
		return fmt.Errorf("linking the kubelet's certificate: %w", err)
	}
	if err := os.Rename(tmp, current); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("linking the kubelet's certificate: %w", err)
	}
	return nil
}

// restImportWait is how long a server's archives other than the pause
// image wait for its Node to be Ready before they are imported anyway.
const restImportWait = 5 * time.Minute

// importTimeout bounds one image's import.
const importTimeout = 3 * time.Minute

// sandboxArchive is the pause image's archive under ImagesDir.
const sandboxArchive = "pause.tar"

// pinnedLabel marks an imported image pinned: containerd's CRI reports
// it so, and the kubelet's image garbage collection never removes a
// pinned image. Without it, a disk above the kubelet's 85% threshold
// (imageGCHighThresholdPercent) lost every image the node carries, the
// add-ons' included, and an appliance has no registry to pull them from
// again.
const pinnedLabel = "io.cri-containerd.pinned=pinned"

// importImages imports the image archives under ImagesDir that want
// names into containerd's k8s.io namespace, where the kubelet finds them,
// pinned, so no registry is ever needed for what the image carries. It returns
// the archives it left for later: those want refused.
func (w *worker) importImages(ctx context.Context, want func(archive string) bool) (later []string) {
	entries, err := os.ReadDir(ImagesDir)
	if err != nil {
		w.o.Printf("node: no images to import: %v", err)
		return nil
	}
	start := time.Now()
	var names, skipped []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tar") {
			continue
		}
		if !want(e.Name()) {
			later = append(later, e.Name())
			continue
		}
		if a, ok := unusedAddon(w.k, e.Name()); ok {
			skipped = append(skipped, a)
			continue
		}
		path := filepath.Join(ImagesDir, e.Name())
		ictx, cancel := context.WithTimeout(ctx, importTimeout)
		cmd := exec.CommandContext(ictx, filepath.Join(w.o.Bin, "ctr"), "--address", render.ContainerdSocket,
			"--namespace", "k8s.io", "images", "import", "--local", "--label", pinnedLabel, path)
		cmd.Env = baseEnv()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			w.o.Printf("node: importing %s: %v: %s", e.Name(), err, brief.LastLine(out, 300))
			continue
		}
		names = append(names, strings.TrimSuffix(e.Name(), ".tar"))
	}
	if len(names) == 0 && len(skipped) == 0 {
		return later
	}
	noun := "images"
	if len(names) == 1 {
		noun = "image"
	}
	line := fmt.Sprintf("node: imported %d %s (%s) into containerd in %.1fs", len(names), noun, strings.Join(names, ", "), time.Since(start).Seconds())
	if len(skipped) > 0 {
		line += "; not the images of add-ons this cluster does not run (" + strings.Join(skipped, ", ") + ")"
	}
	w.o.Printf("%s", line)
	return later
}

// startKubelet hands the kubelet, kube-proxy and flannel to the
// supervisor; the last two wait for the kubelet's client certificate.
func (w *worker) startKubelet() error {
	w.node.Layout.ResolvConf = w.podResolvConf()
	kubelet, err := render.Kubelet(w.o.Config, w.node)
	if err != nil {
		return err
	}
	if err := writeFiles(kubelet.Files); err != nil {
		return err
	}
	svc := w.service(*kubelet)
	svc.Needs = append([]string{"containerd"}, w.kubeletNeeds...)
	svc.Ready = supervise.ReadyFile(w.kubeletCert())
	if err := w.o.Services.Start(svc); err != nil {
		return err
	}
	for _, f := range []func(*config.Config, render.Node) (*render.Command, error){render.KubeProxy, render.Flannel} {
		cmd, err := f(w.o.Config, w.node)
		if err != nil {
			return err
		}
		if cmd == nil {
			continue
		}
		if err := writeFiles(cmd.Files); err != nil {
			return err
		}
		svc := w.service(*cmd)
		svc.Needs = []string{"kubelet"}
		if err := w.o.Services.Start(svc); err != nil {
			return err
		}
	}
	return nil
}

// reportReady says on the console when the node is Ready, as the cluster
// sees it, and, while it is not, why (the kubelet's condition message),
// at most once a minute.
func (w *worker) reportReady(ctx context.Context) {
	if _, err := w.o.Services.Wait(ctx, "kubelet", func(st supervise.Status) bool { return st.State == supervise.Ready }); err != nil {
		return
	}
	tlsCfg, err := w.kubeletTLS()
	if err != nil {
		w.o.Printf("node: %v", err)
		return
	}
	api := kube.New(w.apiserver, kube.Options{TLS: tlsCfg})
	name := w.node.Name
	var said time.Time
	for supervise.Sleep(ctx, 2*time.Second) {
		ready, why, err := w.nodeReady(ctx, api, name)
		if err == nil && ready {
			since := ""
			if !w.o.ConfigLoaded.IsZero() {
				since = fmt.Sprintf(", %.1fs after the config was loaded", time.Since(w.o.ConfigLoaded).Seconds())
			}
			w.o.Printf("node: %s is Ready%s", name, since)
			return
		}
		if time.Since(said) >= time.Minute && time.Since(w.first) >= 30*time.Second {
			said = time.Now()
			if err != nil {
				why = err.Error()
			}
			w.o.Printf("node: %s is not Ready yet: %s", name, why)
		}
	}
}

// nodeReady reads the node's Ready condition with its own credentials.
func (w *worker) nodeReady(ctx context.Context, api *kube.Client, name string) (bool, string, error) {
	c, err := api.NodeReady(ctx, name)
	switch {
	case err != nil:
		return false, "", err
	case c == nil:
		return false, "registered, no Ready condition yet", nil
	case c.LastHeartbeatTime.Before(w.first.Add(-time.Second)):
		// A Ready left from before this boot says nothing of this kubelet.
		return false, "the kubelet has not reported since this boot", nil
	}
	return c.Status == "True", c.Reason + ": " + c.Message, nil
}
