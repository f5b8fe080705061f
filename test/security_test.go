//go:build qemu

package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/node/nodeclaim"
	"github.com/cairn-os/cairn/qemu"
)

// secAgentToken is the agent token of TestSecurity's cluster.
const secAgentToken = "e2e-agent-s3cret-Wm4Kp8Rt2Zx6Qv9L"

// TestSecurity is issue #22's acceptance on the container platform: two
// servers on PostgreSQL with an agent token and a VIP, and an agent joined
// with the agent token. From the agent's kubelet credentials and from the
// agent token's bootstrap token alone, each of these is refused, and the
// log says which and how: reading Secrets in kube-system, getting an admin
// certificate (a request of cairn:cluster-admins is denied) or kubeconfig,
// a serving certificate naming the VIP, a server's address or
// kubernetes.default.svc (left unapproved, one console line each per
// server), patching an Upgrade's spec, a PUT to port 6446. With the agent
// token alone, a kubelet client certificate for s1's name, for a1's with
// another node secret, or without a node secret's proof is denied (one
// console line per request and server), and one for a new name is
// approved, the servers keeping only its public key. The agent is Ready
// and runs a pod; `cairn kubeconfig` with the server token works, and
// deleting the cairn:cluster-admins binding makes its certificate get 403,
// from the apiserver and on port 6446. No console shows a token.
func TestSecurity(t *testing.T) {
	ctx := context.Background()
	ns := bridgeNS(t)
	pg := startPostgres(t, ns, dsAddr)
	img := appImage(t)
	extra := []string{"  agent-token: " + secAgentToken, "  vip: " + vipAddr}
	s1 := startPeer(t, ns, "s1", nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, pg.endpoint(), extra...)))
	s2 := startPeer(t, ns, "s2", nodeRoot(t, serverConfig("s2", "192.168.77.12", clusterToken, pg.endpoint(), extra...)))
	agentCfg := strings.Replace(agentConfig("a1", "192.168.77.21", secAgentToken, "https://192.168.77.11:6443"), "  token: ", "  agent-token: ", 1)
	a1 := startPeer(t, ns, "a1", withImage(t, nodeRoot(t, agentCfg), img))
	for _, n := range []*containerNode{s1, s2, a1} {
		m := n.expect(t, nodeReady, `node: (\S+) is Ready, ([\d.]+)s after the config was loaded`)
		t.Logf("figures: %s: config loaded to node Ready: %ss (container platform, postgres, agent token)", m[1], m[2])
	}
	const s1URL = "https://192.168.77.11:6443"

	// cairn kubeconfig with the server token.
	serverTok, _ := join.ParseToken(clusterToken)
	began := time.Now()
	kcData, err := (&join.Client{Server: s1URL, Token: serverTok, DialContext: ns.DialContext}).AdminKubeconfig(ctx)
	if err != nil {
		t.Fatalf("cairn kubeconfig with the server token: %v", err)
	}
	t.Logf("figures: cairn kubeconfig with the server token: %.1fs (one Argon2id run, a request approved and signed)", time.Since(began).Seconds())
	creds, err := kube.ParseKubeconfig(kcData)
	if err != nil {
		t.Fatal(err)
	}
	creds.DialContext = ns.DialContext
	admin := creds.Client(kube.Options{})
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, kcData, 0o600)
	for _, gone := range []string{"cairn-admin-kubeconfig", "cairn-token"} {
		if err := admin.Get(ctx, "/api/v1/namespaces/kube-system/secrets/"+gone, nil); !kube.IsStatus(err, http.StatusNotFound) {
			t.Errorf("Secret kube-system/%s: %v; want none (404)", gone, err)
		}
	}

	// The agent token's bootstrap token, and the agent's kubelet
	// credentials read from its root.
	caTLS := creds.TLS.Clone()
	caTLS.Certificates = nil
	agentTok, _ := join.ParseToken(secAgentToken)
	id, secret := join.AgentBootstrapToken(agentTok.Secret)
	bootstrap := kube.New(s1URL, kube.Options{TLS: caTLS, Bearer: id + "." + secret, DialContext: ns.DialContext})
	kubeletPair := kubeletCredentials(t, a1)
	kubeletTLS := caTLS.Clone()
	kubeletTLS.Certificates = []tls.Certificate{kubeletPair}
	kubelet := kube.New(s1URL, kube.Options{TLS: kubeletTLS, DialContext: ns.DialContext})
	serverID, _ := join.ServerBootstrapToken(serverTok.Secret)

	var pending []string // serving requests that must stay unapproved
	for _, cred := range []struct {
		who string
		api *kube.Client
	}{{"the agent's kubelet credentials", kubelet}, {"the agent token's bootstrap token", bootstrap}} {
		refused := func(what string, err error) {
			t.Helper()
			switch {
			case err == nil:
				t.Errorf("%s with %s: allowed; want it refused", what, cred.who)
			case kube.IsStatus(err, http.StatusForbidden), kube.IsStatus(err, http.StatusUnauthorized):
				t.Logf("refused: %s with %s: %v", what, cred.who, err)
			default:
				t.Errorf("%s with %s: %v; want 403 Forbidden", what, cred.who, err)
			}
		}
		// A request the apiserver turns away as invalid is refused too.
		refusedCreate := func(what string, err error) {
			t.Helper()
			var ae *kube.Error
			if errors.As(err, &ae) && ae.Code >= 400 && ae.Code < 500 {
				t.Logf("refused: %s with %s: %v", what, cred.who, err)
				return
			}
			t.Errorf("%s with %s: %v; want it refused", what, cred.who, err)
		}
		refused("listing the Secrets of kube-system", cred.api.Get(ctx, "/api/v1/namespaces/kube-system/secrets", nil))
		refused("reading the servers' bootstrap token Secret", cred.api.Get(ctx, "/api/v1/namespaces/kube-system/secrets/bootstrap-token-"+serverID, nil))
		// Authorization comes before the lookup: a 404 would mean allowed.
		refused("patching an Upgrade's spec", cred.api.MergePatch(ctx, "/apis/"+upgrade.APIVersion+"/namespaces/"+upgrade.Namespace+"/"+upgrade.Plural+"/e2e",
			map[string]any{"spec": map[string]any{"image": "evil"}}))

		// An admin certificate: the request is refused, or denied.
		name := fmt.Sprintf("%s%d", join.AdminPrefix, time.Now().UnixNano()%1e9)
		err := cred.api.Do(ctx, http.MethodPost, csrPath, csrObject(t, name, join.AdminSigner, pkix.Name{CommonName: name, Organization: []string{join.AdminsGroup}}, nil, nil, "client auth"), nil)
		if err != nil {
			refusedCreate("asking for an admin certificate", err)
		} else if why := waitDenied(t, admin, name, time.Minute); why != "" {
			t.Logf("refused: an admin certificate for %s: the servers denied it: %s", cred.who, why)
		}

		// Serving certificates for what is not the agent's.
		for _, tt := range []struct {
			what string
			dns  []string
			ip   string
		}{{"the VIP", nil, vipAddr}, {"s1's address", nil, "192.168.77.11"}, {"kubernetes.default.svc", []string{"kubernetes.default.svc"}, ""}} {
			name := fmt.Sprintf("e2e-serving-%d", time.Now().UnixNano()%1e9)
			var ips []net.IP
			if tt.ip != "" {
				ips = []net.IP{net.ParseIP(tt.ip)}
			}
			subject := pkix.Name{CommonName: "system:node:a1", Organization: []string{"system:nodes"}}
			err := cred.api.Do(ctx, http.MethodPost, csrPath, csrObject(t, name, "kubernetes.io/kubelet-serving", subject, tt.dns, ips, "server auth"), nil)
			if err != nil {
				refusedCreate("asking for a serving certificate naming "+tt.what, err)
				continue
			}
			t.Logf("asked, with %s, for a serving certificate naming %s: %s", cred.who, tt.what, name)
			pending = append(pending, name)
		}
	}

	// The agent token alone gets no admin kubeconfig.
	if _, err := (&join.Client{Server: s1URL, Token: agentTok, DialContext: ns.DialContext}).AdminKubeconfig(ctx); err == nil || !strings.Contains(err.Error(), "agent token") {
		t.Errorf("cairn kubeconfig with the agent token: %v; want it refused as the agent token", err)
	} else {
		t.Logf("refused: cairn kubeconfig with the agent token: %v", err)
	}

	// Node names: with the agent token alone, a kubelet client
	// certificate for s1's name is denied, so is a1's with another node
	// secret and a new name's without a node secret's proof; a new name
	// with one is approved and signed, and the servers keep only its
	// public key. kube-controller-manager approves none of these itself.
	nodeclaim.WaitFor = 2 * time.Minute
	if err := admin.Get(ctx, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cairn:node-autoapprove-bootstrap", nil); !kube.IsStatus(err, http.StatusNotFound) {
		t.Errorf("ClusterRoleBinding cairn:node-autoapprove-bootstrap: %v; want none (404)", err)
	}
	if rec := nameRecord(t, admin, "a1"); len(rec) != 1 || len(rec["node-key"]) == 0 {
		t.Errorf("the record of a1's name holds %v; want its node secret's public key only", rec)
	}
	var denied []string
	for _, tt := range []struct{ what, node, want string }{
		{"s1's name", "s1", "s1 is a server's name, which the agent token never gets"},
		{"a1's name with another node secret", "a1", "the name a1 belongs to another node secret"},
	} {
		secret, _, err := nodeclaim.Load(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		_, err = nodeclaim.Request(ctx, bootstrap, tt.node, secret)
		var d *nodeclaim.DeniedError
		switch {
		case errors.As(err, &d) && strings.Contains(d.Message, tt.want):
			t.Logf("refused: a kubelet client certificate for %s with the agent token: %s denied it: %s", tt.what, d.Request, d.Message)
			denied = append(denied, d.Request)
		default:
			t.Errorf("a kubelet client certificate for %s with the agent token: %v; want it denied saying %q", tt.what, err, tt.want)
		}
	}
	bare := fmt.Sprintf("e2e-bare-%d", time.Now().UnixNano()%1e9)
	if err := bootstrap.Do(ctx, http.MethodPost, csrPath, csrObject(t, bare, nodeclaim.Signer, pkix.Name{CommonName: "system:node:e2e-bare", Organization: []string{"system:nodes"}}, nil, nil, "client auth"), nil); err != nil {
		t.Errorf("asking, with the agent token, for a kubelet client certificate without a node secret: %v", err)
	} else if why := waitDenied(t, admin, bare, time.Minute); why != "" {
		t.Logf("refused: a kubelet client certificate without a node secret's proof: %s", why)
		denied = append(denied, bare)
	}
	newcomer, _, _ := nodeclaim.Load(t.TempDir())
	if data, err := nodeclaim.Request(ctx, bootstrap, "e2e-newcomer", newcomer); err != nil {
		t.Errorf("a kubelet client certificate for a new name with the agent token: %v; want it approved", err)
	} else if pair, err := tls.X509KeyPair(data, data); err != nil {
		t.Errorf("the new name's certificate: %v", err)
	} else if cert, _ := x509.ParseCertificate(pair.Certificate[0]); cert.Subject.CommonName != "system:node:e2e-newcomer" {
		t.Errorf("the new name's certificate is %s's", cert.Subject.CommonName)
	} else {
		t.Logf("approved: a kubelet client certificate for the new name e2e-newcomer, until %s", cert.NotAfter.UTC().Format(time.DateTime))
		if rec := nameRecord(t, admin, "e2e-newcomer"); len(rec) != 1 || string(rec["node-key"]) != newcomer.Public() {
			t.Errorf("the record of e2e-newcomer holds %v; want the node secret's public key only", rec)
		}
	}
	for _, name := range denied {
		said := 0
		for _, s := range []*containerNode{s1, s2} {
			k := countLines(s, `^node: denying kubelet client certificate request `+regexp.QuoteMeta(name)+`: `)
			if k > 1 {
				t.Errorf("%s says %d times why it denies %s; want once", s.name, k, name)
			}
			said += k
		}
		if said == 0 {
			t.Errorf("no server says why it denied %s", name)
		}
	}

	// Port 6446 takes no PUT without an admin's certificate.
	for _, cred := range []struct {
		who   string
		certs []tls.Certificate
	}{{"no client certificate", nil}, {"the agent's kubelet certificate", []tls.Certificate{kubeletPair}}} {
		code, body := blobPut(t, ns, caTLS, cred.certs, "https://192.168.77.11:"+strconv.Itoa(upgrade.BlobPort))
		if code != http.StatusForbidden && code != http.StatusUnauthorized {
			t.Errorf("PUT to port %d with %s: %d %s; want 403", upgrade.BlobPort, cred.who, code, body)
		} else {
			t.Logf("refused: PUT to port %d with %s: %d %s", upgrade.BlobPort, cred.who, code, body)
		}
	}

	// The agent runs a pod.
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata: {name: on-a1, namespace: default}
spec:
  nodeName: a1
  containers:
    - name: app
      image: `+appRef+`
      imagePullPolicy: Never
      command: ["/app", "serve"]
`), 0o644)
	if out, err := kubectl(t, ns, kc, "apply", "-f", manifest); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(3 * time.Second) {
		out, _ := kubectl(t, ns, kc, "get", "pod", "on-a1", "-o", "jsonpath={.status.phase}")
		if out == "Running" {
			break
		}
		if time.Now().After(deadline) {
			desc, _ := kubectl(t, ns, kc, "describe", "pod", "on-a1")
			t.Fatalf("the pod on a1 is %q after 5m:\n%s", out, desc)
		}
	}

	// The serving requests stay unapproved, each said once per server.
	// (By now the approvers have had a minute and more: a pass every 3s.)
	for _, name := range pending {
		var o struct {
			Status struct {
				Certificate []byte
				Conditions  []struct{ Type string }
			}
		}
		if err := admin.Get(ctx, csrPath+"/"+name, &o); err != nil {
			t.Errorf("reading %s: %v", name, err)
			continue
		}
		if len(o.Status.Certificate) > 0 || len(o.Status.Conditions) > 0 {
			t.Errorf("serving request %s: conditions %v, certificate %v; want it left pending", name, o.Status.Conditions, len(o.Status.Certificate) > 0)
		}
		said := 0
		for _, s := range []*containerNode{s1, s2} {
			k := countLines(s, `^node: not approving serving certificate request `+regexp.QuoteMeta(name)+`: `)
			if k > 1 {
				t.Errorf("%s says %d times why it does not approve %s; want once", s.name, k, name)
			}
			said += k
		}
		if said == 0 {
			t.Errorf("no server says why it does not approve %s", name)
		}
	}
	if !strings.Contains(s1.console()+s2.console(), "node a1 names "+vipAddr+", the VIP") {
		t.Errorf("no server names the VIP as what it refused:\n%s", s1.tail(30))
	}

	// Deleting the admins' binding takes the minted certificate's rights,
	// and its uploads to port 6446 (the server asks the apiserver, keeping
	// a yes for 30 s).
	blobURL := "https://192.168.77.11:" + strconv.Itoa(upgrade.BlobPort)
	if code, body := blobPut(t, ns, caTLS, creds.TLS.Certificates, blobURL); code != http.StatusForbidden || !strings.Contains(body, "no upgrade in progress names") {
		t.Errorf("PUT to port %d of a file no upgrade names with the admin's certificate: %d %s; want 403 for the file, not the admin", upgrade.BlobPort, code, body)
	}
	if err := admin.Do(ctx, http.MethodDelete, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/"+join.AdminsGroup, nil, nil); err != nil {
		t.Fatalf("deleting the ClusterRoleBinding %s: %v", join.AdminsGroup, err)
	}
	deleted := time.Now()
	for {
		err := admin.Get(ctx, "/api/v1/nodes", nil)
		if kube.IsStatus(err, http.StatusForbidden) {
			t.Logf("refused: the minted admin certificate %.1fs after its binding was deleted: %v", time.Since(deleted).Seconds(), err)
			break
		}
		if time.Since(deleted) > time.Minute {
			t.Errorf("the minted admin certificate a minute after its binding was deleted: %v; want 403", err)
			break
		}
		time.Sleep(time.Second)
	}
	for {
		code, body := blobPut(t, ns, caTLS, creds.TLS.Certificates, blobURL)
		if code == http.StatusForbidden && strings.Contains(body, "may not delete Secrets in kube-system") {
			t.Logf("refused: PUT to port %d with the minted admin certificate %.1fs after its binding was deleted: %d %s", upgrade.BlobPort, time.Since(deleted).Seconds(), code, body)
			break
		}
		if time.Since(deleted) > time.Minute+30*time.Second {
			t.Errorf("PUT to port %d with the minted admin certificate %s after its binding was deleted: %d %s; want 403, not an admin", upgrade.BlobPort, time.Since(deleted).Round(time.Second), code, body)
			break
		}
		time.Sleep(2 * time.Second)
	}
	noSecretOnConsole(t, []*containerNode{s1, s2, a1}, clusterToken, secAgentToken, pgPassword)
}

const csrPath = "/apis/certificates.k8s.io/v1/certificatesigningrequests"

// nameRecord is the data of the servers' record of a node name's claim.
func nameRecord(t *testing.T, admin *kube.Client, node string) map[string][]byte {
	t.Helper()
	var o struct{ Data map[string][]byte }
	if err := admin.Get(context.Background(), "/api/v1/namespaces/kube-system/secrets/"+node+nodeclaim.RecordSuffix, &o); err != nil {
		t.Errorf("the record of the name %s: %v", node, err)
	}
	return o.Data
}

// csrObject is a CertificateSigningRequest for a new key.
func csrObject(t *testing.T, name, signer string, subject pkix.Name, dns []string, ips []net.IP, usage string) map[string]any {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject, DNSNames: dns, IPAddresses: ips}, key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{"request": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			"signerName": signer, "expirationSeconds": 3600, "usages": []string{"digital signature", usage}}}
}

// waitDenied waits for a request's Denied condition and returns its
// message; it fails t if the request is approved or issued, or nothing is
// decided within d.
func waitDenied(t *testing.T, admin *kube.Client, name string, d time.Duration) string {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(time.Second) {
		var o struct {
			Status struct {
				Certificate []byte
				Conditions  []struct{ Type, Message string }
			}
		}
		if err := admin.Get(context.Background(), csrPath+"/"+name, &o); err != nil {
			t.Errorf("reading %s: %v", name, err)
			return ""
		}
		if len(o.Status.Certificate) > 0 {
			t.Errorf("%s was issued a certificate", name)
			return ""
		}
		for _, c := range o.Status.Conditions {
			switch c.Type {
			case "Denied":
				return c.Message
			case "Approved":
				t.Errorf("%s was approved", name)
				return ""
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: neither denied nor approved within %s; the servers deny an admin request not made with the server token", name, d)
			return ""
		}
	}
}

// kubeletCredentials reads the agent's kubelet client certificate and key
// as its kubeconfig names them, from the node's own root (its writes are
// on a tmpfs of its mount namespace, seen through /proc).
func kubeletCredentials(t *testing.T, n *containerNode) tls.Certificate {
	t.Helper()
	root := n.procRoot(t)
	kc, err := os.ReadFile(filepath.Join(root, "var/lib/cairn/kubeconfig/kubelet.conf"))
	if err != nil {
		t.Fatalf("the agent's kubelet kubeconfig: %v", err)
	}
	m := regexp.MustCompile(`client-certificate: (\S+)`).FindSubmatch(kc)
	if m == nil {
		t.Fatalf("the agent's kubelet kubeconfig names no client certificate:\n%s", kc)
	}
	// kubelet-client-current.pem is a symbolic link to an absolute path,
	// which means the node's root, not this host's.
	file := filepath.Join(root, string(m[1]))
	if target, err := os.Readlink(file); err == nil {
		if filepath.IsAbs(target) {
			file = filepath.Join(root, target)
		} else {
			file = filepath.Join(filepath.Dir(file), target)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		t.Fatalf("the kubelet's %s: %v", m[1], err)
	}
	return pair
}

// procRoot is the node's root directory as its PID 1 sees it.
func (n *containerNode) procRoot(t *testing.T) string {
	t.Helper()
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", n.cmd.Process.Pid, n.cmd.Process.Pid))
	f := strings.Fields(string(kids))
	if err != nil || len(f) == 0 {
		t.Fatalf("%s's PID 1: %v", n.name, err)
	}
	return "/proc/" + f[0] + "/root"
}

// blobPut PUTs a small file to the servers' upgrade file port with certs
// as the client's certificates, and returns the answer.
func blobPut(t *testing.T, ns *qemu.Netns, caTLS *tls.Config, certs []tls.Certificate, base string) (int, string) {
	t.Helper()
	cfg := caTLS.Clone()
	cfg.Certificates = certs
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DialContext: ns.DialContext}}
	body := "an image of the attacker's choice"
	sum := sha256.Sum256([]byte(body))
	req, err := http.NewRequest(http.MethodPut, base+upgrade.BlobPath(hex.EncodeToString(sum[:])), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Errorf("PUT to %s: %v", base, err)
		return 0, ""
	}
	defer resp.Body.Close()
	msg := make([]byte, 200)
	k, _ := resp.Body.Read(msg)
	return resp.StatusCode, strings.TrimSpace(string(msg[:k]))
}
