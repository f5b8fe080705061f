package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/node/manifests"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/supervise"
)

// apiserverLocal is where the init and the other components reach this
// server's apiserver.
var apiserverLocal = fmt.Sprintf("https://127.0.0.1:%d", config.APIServerPort)

// writePair writes name.crt (0644) and name.key (0600) in the cert dir.
func (s *server) writePair(name string, p pki.Pair) error {
	if err := writeFile(s.l.Cert(name+".crt"), p.Cert, 0o644); err != nil {
		return err
	}
	if len(p.Key) == 0 {
		return nil
	}
	return writeFile(s.l.Cert(name+".key"), p.Key, 0o600)
}

// writePKI writes the cluster's authorities and this server's own
// certificates and kubeconfigs, and the full token.
func (s *server) writePKI(c pki.Cluster) error {
	now := time.Now()
	for _, name := range []string{pki.ServerCA, pki.ClientCA, pki.FrontProxyCA, pki.ServiceAccount} {
		p := c[name]
		if name == pki.ServiceAccount {
			if err := writeFile(s.l.Cert("sa.pub"), p.Cert, 0o644); err != nil {
				return err
			}
			if err := writeFile(s.l.Cert("sa.key"), p.Key, 0o600); err != nil {
				return err
			}
			continue
		}
		if err := s.writePair(name, p); err != nil {
			return err
		}
	}
	leaves := []struct {
		name, ca string
		leaf     pki.Leaf
	}{
		{"apiserver", pki.ServerCA, s.apiserverLeaf()},
		{"apiserver-kubelet-client", pki.ClientCA, pki.Leaf{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Client: true}},
		{"front-proxy-client", pki.FrontProxyCA, pki.Leaf{CommonName: "front-proxy-client", Client: true}},
		{"controller-manager", pki.ClientCA, pki.Leaf{CommonName: "system:kube-controller-manager", Client: true}},
		{"scheduler", pki.ClientCA, pki.Leaf{CommonName: "system:kube-scheduler", Client: true}},
	}
	caPEM := c[pki.ServerCA].Cert
	for _, l := range leaves {
		p, err := c.Issue(l.ca, l.leaf, now)
		if err != nil {
			return err
		}
		if err := s.writePair(l.name, p); err != nil {
			return err
		}
		if l.name == "controller-manager" || l.name == "scheduler" {
			kc := kube.Kubeconfig(apiserverLocal, caPEM, p.Cert, p.Key, l.leaf.CommonName)
			if err := writeFile(s.l.Kubeconfig(l.name), kc, 0o600); err != nil {
				return err
			}
		}
	}
	// This server's own admin certificate is minted for it and kept in
	// memory; older cairns wrote the record's year-long one to a file.
	admin, err := newSelfAdmin(c, nodeName(s.o), time.Now)
	if err != nil {
		return err
	}
	s.admin = admin
	if err := os.Remove(s.l.Kubeconfig("admin")); err != nil && !os.IsNotExist(err) {
		return err
	}
	tokenPath := s.tokenPath()
	if err := writeFile(tokenPath, []byte(join.Full(s.tok.Secret, caPEM)+"\n"), 0o600); err != nil {
		return err
	}
	if s.tok.CAHash != nil {
		if err := join.CheckPin(s.tok, caPEM); err != nil {
			s.o.Printf("node: warning: the K10 token pins another CA than the cluster's: `cairn kubeconfig` will refuse this server with it; use the token in %s", tokenPath)
		}
	}
	return nil
}

func (s *server) tokenPath() string { return s.l.DataDir + "/token" }

// apiserverLeaf is the apiserver's serving certificate: every name and
// address a client may use for it.
func (s *server) apiserverLeaf() pki.Leaf {
	k := s.k
	domain := k.ClusterDomain
	l := pki.Leaf{CommonName: "kube-apiserver", Server: true,
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + domain},
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if h := nodeName(s.o); h != "" {
		l.DNSNames = append(l.DNSNames, h)
	}
	if s.o.Hostname != "" {
		l.DNSNames = append(l.DNSNames, s.o.Hostname)
	}
	if first, ok := firstServiceIP(k.ServiceCIDR); ok {
		l.IPs = append(l.IPs, first.AsSlice())
	}
	for _, a := range s.addresses() {
		l.IPs = append(l.IPs, a.AsSlice())
	}
	for _, name := range append(append([]string(nil), k.TLSSAN...), k.VIP, k.NodeIP) {
		for n := range strings.SplitSeq(name, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if ip := net.ParseIP(n); ip != nil {
				l.IPs = append(l.IPs, ip)
			} else {
				l.DNSNames = append(l.DNSNames, n)
			}
		}
	}
	return l
}

// firstServiceIP is the kubernetes Service's ClusterIP: the first address
// of the (first) service CIDR.
func firstServiceIP(cidrs string) (netip.Addr, bool) {
	first, _, _ := strings.Cut(cidrs, ",")
	p, err := netip.ParsePrefix(strings.TrimSpace(first))
	if err != nil {
		return netip.Addr{}, false
	}
	return p.Masked().Addr().Next(), true
}

// startControlPlane hands kube-apiserver, kube-controller-manager and
// kube-scheduler to the supervisor, in that order.
func (s *server) startControlPlane(c pki.Cluster) error {
	node := s.renderNode()
	if node.IP == "" {
		node.IP = "127.0.0.1" // no network: the cluster is this machine
	}
	api, err := render.APIServer(s.o.Config, node)
	if err != nil {
		return err
	}
	if err := writeFiles(api.Files); err != nil {
		return err
	}
	s.wroteFiles(api.Files)
	tlsCfg, err := s.adminTLS(c)
	if err != nil {
		return err
	}
	var needs []string
	switch s.ds.Kind {
	case config.DatastoreEmbedded:
		needs = []string{"etcd"}
	case config.DatastoreEtcd:
	default:
		needs = []string{"kine"}
	}
	svc := s.service("kube-apiserver", *api)
	svc.Needs = needs
	svc.Ready = supervise.ReadyHTTP(apiserverLocal+"/readyz", tlsCfg)
	svc.StopTimeout = 30 * time.Second
	if err := s.start(svc); err != nil {
		return err
	}
	for _, f := range []func(*config.Config, render.Node) (*render.Command, error){render.ControllerManager, render.Scheduler} {
		cmd, err := f(s.o.Config, node)
		if err != nil {
			return err
		}
		if err := writeFiles(cmd.Files); err != nil {
			return err
		}
		svc := s.service(cmd.Name, *cmd)
		svc.Needs = []string{"kube-apiserver"}
		if err := s.start(svc); err != nil {
			return err
		}
	}
	return nil
}

// adminTLS trusts the cluster's serving CA and presents this server's
// own admin certificate, renewed as it ages (selfAdmin; c is not read:
// writePKI minted it). A client that lives long makes its connections
// with s.admin.dial, or uses s.admin.client.
func (s *server) adminTLS(c pki.Cluster) (*tls.Config, error) {
	if s.admin == nil {
		return nil, errors.New("this server's admin certificate is not minted yet")
	}
	return s.admin.tlsConfig()
}

// labelNode labels this server's Node as the control plane's (a node may
// not set that label itself), once the kubelet has registered it.
func (s *server) labelNode(ctx context.Context, api *kube.Client) {
	patch := map[string]any{"metadata": map[string]any{"labels": map[string]string{upgrade.ServerLabel: "true"}}}
	for supervise.Sleep(ctx, 3*time.Second) {
		if err := api.MergePatch(ctx, "/api/v1/nodes/"+nodeName(s.o), patch); err == nil {
			return
		}
	}
}

// whenReady waits for the apiserver, publishes what token holders need
// (then closes publishedCh), and says on the console who this node is.
func (s *server) whenReady(ctx context.Context, c pki.Cluster, publishedCh chan<- struct{}) {
	if _, err := s.o.Services.Wait(ctx, "kube-apiserver", func(st supervise.Status) bool { return st.State == supervise.Ready }); err != nil {
		return
	}
	readyAt := time.Now()
	tlsCfg, err := s.adminTLS(c)
	if err != nil {
		s.o.Printf("node: %v", err)
		return
	}
	api, err := s.admin.client(kube.Options{})
	if err != nil {
		s.o.Printf("node: %v", err)
		return
	}
	objs := s.joinObjects(c)
	// The proofs' key derivation took join.ProofMemory: PID 1 gives it back.
	debug.FreeOSMemory()
	for delay := time.Second; ; delay = min(delay*2, 30*time.Second) {
		err := s.publishJoin(ctx, api, objs)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		s.o.Printf("node: publishing the cluster's CA and join objects: %v; retrying in %s", err, delay)
		if !supervise.Sleep(ctx, delay) {
			return
		}
	}
	supervise.Go("node: certificate requests", func() { s.approveRequests(ctx, api) })
	supervise.Go("node: control-plane label", func() { s.labelNode(ctx, api) })
	supervise.Go("node: secrets at rest", func() { s.keepSecretsAtRest(ctx, api) })
	close(publishedCh) // the upgrader serves the upgrade files from now on
	supervise.Go("node: add-ons", func() {
		for delay := time.Second; ; delay = min(delay*2, 30*time.Second) {
			err := s.applyAddons(ctx, api, kubeletServingCA(c))
			if err == nil || ctx.Err() != nil {
				return
			}
			s.o.Printf("node: applying the add-ons: %v; retrying in %s", err, delay)
			if !supervise.Sleep(ctx, delay) {
				return
			}
		}
	})
	supervise.Go("node: manifests", func() {
		manifests.Run(ctx, manifests.Options{API: api, Node: nodeName(s.o), Printf: s.o.Printf,
			Inline: s.k.Manifests, Dir: layout.ManifestsDir, Disable: s.k.Disable})
	})
	// This server's authorizer learns the bindings through its watch
	// cache; the ready line promises `cairn kubeconfig` works here.
	anon := kube.New(apiserverLocal, kube.Options{TLS: &tls.Config{RootCAs: tlsCfg.RootCAs, MinVersion: tls.VersionTLS12}})
	for delay := 250 * time.Millisecond; ; delay = min(delay*2, 5*time.Second) {
		err := anon.Get(ctx, "/api/v1/namespaces/kube-public/configmaps/"+join.CAConfigMap, nil)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if delay >= 5*time.Second {
			s.o.Printf("node: the cluster's CA is not readable anonymously yet: %v; retrying in %s", err, delay)
		}
		if !supervise.Sleep(ctx, delay) {
			return
		}
	}
	var addrs []string
	for _, a := range s.addresses() {
		addrs = append(addrs, a.String())
	}
	if len(addrs) == 0 {
		addrs = []string{"none"}
	}
	since := ""
	if !s.o.ConfigLoaded.IsZero() {
		since = fmt.Sprintf(", %.1fs after the config was loaded", readyAt.Sub(s.o.ConfigLoaded).Seconds())
	}
	s.o.Printf("node: %s is a server: addresses %s; datastore %s; kube-apiserver ready on port %d%s",
		nodeName(s.o), strings.Join(addrs, ","), s.datastoreName(), config.APIServerPort, since)
	s.o.Printf("node: the cluster token is in %s (mode 0600); `cairn kubeconfig --server https://ADDRESS:%d --token-file FILE` fetches an admin kubeconfig with it",
		s.tokenPath(), config.APIServerPort)
}
