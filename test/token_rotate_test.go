//go:build qemu

package test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/qemu"
)

// rotAgentToken is the agent token TestTokenRotate's cluster starts with.
const rotAgentToken = "e2e-agent-s3cret-Rt5Wq8Lz3Kx7Mv2N"

// TestTokenRotate is `cairn token rotate` on a running cluster (issue
// #22), on the container platform: two servers on PostgreSQL with an
// agent token, an agent joined with it.
//
//  1. The server token is rotated from a file, the agent token to one
//     cairn makes (-o FILE, 0600): the CLI says both servers confirmed,
//     s1 re-sealed the record (and recorded the agent token), s2 found it
//     done; each server says so once on its console.
//  2. The old server token gets no kubeconfig (the CA proof no longer
//     answers to it) and its bootstrap token, like the old agent token's,
//     is refused by both apiservers (401); the new server token gets a
//     kubeconfig, the new agent token is the agents'.
//  3. s1, s2 and a1 stay Ready: their kubelets renew their Leases after
//     the rotation, on their certificates.
//  4. A new agent, a2, joins with the new agent token.
//  5. s2 restarts with its config still naming the old tokens, its STATE
//     (/var/lib/cairn) kept: it boots with the rotated ones it kept, says
//     once each that the config's token and agent token are stale, and is
//     Ready again.
//  6. a1 restarts without STATE (no certificate), the old agent token in
//     its config: one line says it is not joining and why, and no kubelet
//     starts.
//
// No console and no output of the CLI but the -o file shows a token.
func TestTokenRotate(t *testing.T) {
	ctx := context.Background()
	ns := bridgeNS(t)
	pg := startPostgres(t, ns, dsAddr)
	extra := []string{"  agent-token: " + rotAgentToken}
	s2Config := serverConfig("s2", "192.168.77.12", clusterToken, pg.endpoint(), extra...)
	s1 := startPeer(t, ns, "s1", nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, pg.endpoint(), extra...)))
	s2 := startPeer(t, ns, "s2", nodeRoot(t, s2Config))
	agentWith := func(name, addr, token string) string {
		return strings.Replace(agentConfig(name, addr, token, "https://192.168.77.11:6443"), "  token: ", "  agent-token: ", 1)
	}
	a1Config := agentWith("a1", "192.168.77.21", rotAgentToken)
	a1 := startPeer(t, ns, "a1", nodeRoot(t, a1Config))
	all := []*containerNode{s1, s2, a1}
	for _, n := range all {
		n.expect(t, nodeReady, `node: \S+ is Ready`)
	}
	const s1URL, s2URL = "https://192.168.77.11:6443", "https://192.168.77.12:6443"
	oldTok, _ := join.ParseToken(clusterToken)
	kcData, err := (&join.Client{Server: s1URL, Token: oldTok, DialContext: ns.DialContext}).AdminKubeconfig(ctx)
	if err != nil {
		t.Fatalf("cairn kubeconfig with the server token: %v", err)
	}
	dir := t.TempDir()
	kc := filepath.Join(dir, "admin.conf")
	os.WriteFile(kc, kcData, 0o600)
	creds, err := kube.ParseKubeconfig(kcData)
	if err != nil {
		t.Fatal(err)
	}
	caTLS := creds.TLS.Clone()
	caTLS.Certificates = nil

	// The servers are the Nodes with the control-plane role: both, before
	// anything is rotated.
	oldAdmin := creds.Client(kube.Options{DialContext: ns.DialContext})
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
		var list struct{ Items []any }
		err := oldAdmin.Get(ctx, "/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane", &list)
		if err == nil && len(list.Items) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the servers' Nodes with the control-plane role: %d, %v; want 2", len(list.Items), err)
		}
	}

	// 1. The server token from a file, then the agent token cairn makes.
	newTok, _ := join.Generate()
	newFile := filepath.Join(dir, "server-token")
	os.WriteFile(newFile, []byte(newTok+"\n"), 0o600)
	rotated := time.Now()
	stdout, stderr := tokenRotate(t, ns, "--kubeconfig", kc, "--new-token", newFile)
	for _, want := range []string{
		`(?m)^cairn token rotate: s1 \(192\.168\.77\.11\): confirmed: re-sealed the cluster record with the new server token; bootstrap token \w+ in place, \w+ deleted$`,
		`(?m)^cairn token rotate: s2 \(192\.168\.77\.12\): confirmed: the cluster record, re-sealed already, opens with the new server token; bootstrap token \w+ in place$`,
		`(?m)^cairn token rotate: the server token is rotated on 2 of 2 servers \(s1, s2\)\. `,
	} {
		if !regexp.MustCompile(want).MatchString(stderr) {
			t.Errorf("cairn token rotate says:\n%s\nwant a line matching %s", stderr, want)
		}
	}
	if stdout != "" {
		t.Errorf("cairn token rotate --new-token FILE printed %q; want nothing", stdout)
	}
	agentFile := filepath.Join(dir, "agent-token")
	stdout, stderr = tokenRotate(t, ns, "--agent", "--kubeconfig", kc, "-o", agentFile)
	data, err := os.ReadFile(agentFile)
	fi, _ := os.Stat(agentFile)
	agentNew := strings.TrimSpace(string(data))
	if err != nil || fi.Mode().Perm() != 0o600 || join.Strength(agentNew) < join.MinStrength || stdout != "" {
		t.Fatalf("cairn token rotate --agent -o FILE: %v, mode %v, stdout %q; want a strong token in a 0600 file, nothing printed", err, fi.Mode().Perm(), stdout)
	}
	if !strings.Contains(stderr, "s1 (192.168.77.11): confirmed: recorded the new agent token in the cluster record") ||
		!strings.Contains(stderr, "s2 (192.168.77.12): confirmed: the cluster record names the new agent token already") {
		t.Errorf("cairn token rotate --agent says:\n%s", stderr)
	}
	for _, tt := range []struct {
		n  *containerNode
		re string
	}{
		{s1, `node: the server token was rotated \(cairn token rotate, by cairn-admin-\w+\): this server re-sealed the cluster record with it; `},
		{s2, `node: the server token was rotated \(cairn token rotate, by cairn-admin-\w+\): the cluster record, re-sealed already, opens with it here; `},
		{s1, `node: the agent token was rotated \(cairn token rotate --agent, by cairn-admin-\w+\): this server recorded it in the cluster record; `},
		{s2, `node: the agent token was rotated \(cairn token rotate --agent, by cairn-admin-\w+\): the cluster record names it already; `},
	} {
		tt.n.expect(t, time.Minute, tt.re)
		if k := countLines(tt.n, `^`+tt.re); k != 1 {
			t.Errorf("%s says %d times %s; want once", tt.n.name, k, tt.re)
		}
	}

	// 2. The old tokens open nothing; the new ones do.
	if _, err := (&join.Client{Server: s1URL, Token: oldTok, DialContext: ns.DialContext}).AdminKubeconfig(ctx); err == nil || !strings.Contains(err.Error(), "cannot prove it knows the token") {
		t.Errorf("cairn kubeconfig with the old server token: %v; want the CA proof to refuse it", err)
	} else {
		t.Logf("refused: cairn kubeconfig with the old server token: %v", err)
	}
	oldServerID, oldServerSecret := join.ServerBootstrapToken(oldTok.Secret)
	oldAgentID, oldAgentSecret := join.AgentBootstrapToken(rotAgentToken)
	for _, b := range []struct{ what, bearer string }{
		{"the old server token's bootstrap token", oldServerID + "." + oldServerSecret},
		{"the old agent token's bootstrap token", oldAgentID + "." + oldAgentSecret},
	} {
		for _, url := range []string{s1URL, s2URL} {
			api := kube.New(url, kube.Options{TLS: caTLS, Bearer: b.bearer, DialContext: ns.DialContext})
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Second) {
				err := api.Get(ctx, csrPath, nil)
				if kube.IsStatus(err, http.StatusUnauthorized) {
					t.Logf("refused: %s at %s: %v", b.what, url, err)
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s at %s a minute after the rotation: %v; want 401", b.what, url, err)
					break
				}
			}
		}
	}
	tok, _ := join.ParseToken(newTok)
	kcNew, err := (&join.Client{Server: s2URL, Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(ctx)
	if err != nil {
		t.Fatalf("cairn kubeconfig with the new server token: %v", err)
	}
	adminCreds, _ := kube.ParseKubeconfig(kcNew)
	adminCreds.DialContext = ns.DialContext
	admin := adminCreds.Client(kube.Options{})
	agentTok, _ := join.ParseToken(agentNew)
	if v, err := (&join.Client{Server: s1URL, Token: agentTok, DialContext: ns.DialContext}).Cluster(ctx); err != nil || v.Role != join.RoleAgent {
		t.Errorf("the new agent token: %+v, %v; want it proven as the agents'", v, err)
	}

	// 3. Every kubelet carries on with its certificate.
	for _, name := range []string{"s1", "s2", "a1"} {
		leaseRenewedAfter(t, admin, name, rotated.Add(20*time.Second), 2*time.Minute)
	}
	apiNew := newAPIClient(t, ns, kcNew)
	for name, st := range apiNew.nodes(t, s1URL) {
		if !strings.HasPrefix(st, "Ready") {
			t.Errorf("%s is %q after the rotation; want Ready", name, st)
		}
	}

	// 4. A new agent joins with the new agent token.
	a2 := startPeer(t, ns, "a2", nodeRoot(t, agentWith("a2", "192.168.77.22", agentNew)))
	all = append(all, a2)
	a2.expect(t, nodeReady, `node: a2 is Ready`)

	// 5. s2 restarts, its config naming the old tokens, its STATE kept.
	root := nodeRoot(t, s2Config)
	keepState(t, s2, root)
	s2.stop(t)
	s2 = startPeer(t, ns, "s2", root)
	all = append(all, s2)
	stale := []string{
		`node: the token in kubernetes\.token is stale: the server token was rotated \(cairn token rotate\); this server opened the cluster with the rotated one it keeps in /var/lib/cairn/token\. Put that one in the config$`,
		`node: the agent token in kubernetes\.agent-token is stale: the agent token was rotated \(cairn token rotate --agent\); this server uses the rotated one it keeps in /var/lib/cairn/agent-token\. Put that one in the config$`,
	}
	for _, re := range stale {
		s2.expect(t, controlPlane, re)
	}
	s2.expect(t, controlPlane, reServerReady)
	s2.expect(t, nodeReady, `node: s2 is Ready`)
	for _, re := range stale {
		if k := countLines(s2, `^`+re); k != 1 {
			t.Errorf("the restarted s2 says %d times %s; want once", k, re)
		}
	}

	// 6. a1 restarts without its certificate, the old agent token in its
	// config: one line, no kubelet.
	a1.stop(t)
	a1 = startPeer(t, ns, "a1", nodeRoot(t, a1Config))
	all = append(all, a1)
	notJoining := `node: not joining: the server's CA does not match the token: .*This agent has no kubelet certificate to rejoin with, .*cairn token rotate may have replaced; it starts no kubelet until then`
	a1.expect(t, 3*time.Minute, notJoining)
	time.Sleep(70 * time.Second) // it tries again every minute, quietly
	if k := countLines(a1, `^node: not joining: `); k != 1 {
		t.Errorf("a1 says %d times that it is not joining; want once:\n%s", k, a1.tail(20))
	}
	if strings.Contains(a1.console(), "is Ready") {
		t.Errorf("a1 with the old agent token became Ready:\n%s", a1.tail(20))
	}
	noSecretOnConsole(t, all, clusterToken, rotAgentToken, newTok, agentNew, pgPassword)
}

// tokenRotate runs `cairn token rotate ARGS` in ns and returns its
// standard output and error; it fails t when it fails.
func tokenRotate(t *testing.T, ns *qemu.Netns, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := ns.Command(ctx, cairn(t), append([]string{"token", "rotate"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	t.Logf("cairn token rotate %s (%.1fs):\n%s", strings.Join(args, " "), time.Since(began).Seconds(), stderr.String())
	if err != nil {
		t.Fatalf("cairn token rotate %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String()
}

// leaseRenewedAfter waits up to d for node's Lease in kube-node-lease to
// be renewed after t0: its kubelet still talks to the apiserver.
func leaseRenewedAfter(t *testing.T, admin *kube.Client, node string, t0 time.Time, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(2 * time.Second) {
		var l struct {
			Spec struct {
				RenewTime string `json:"renewTime"`
			} `json:"spec"`
		}
		err := admin.Get(context.Background(), "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"+node, &l)
		renewed, perr := time.Parse(time.RFC3339Nano, l.Spec.RenewTime)
		if err == nil && perr == nil && renewed.After(t0) {
			t.Logf("%s's kubelet renewed its Lease at %s, after the rotation", node, renewed.Local().Format(time.TimeOnly))
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s's Lease: renewed %q (%v); want a renewal after %s", node, l.Spec.RenewTime, err, t0.Format(time.TimeOnly))
			return
		}
	}
}

// keepState copies the running node n's /var/lib/cairn into root, as a
// disk's STATE partition keeps it across a restart (the container
// platform's STATE is a tmpfs that ends with the node).
func keepState(t *testing.T, n *containerNode, root string) {
	t.Helper()
	dst := filepath.Join(root, "var/lib/cairn")
	os.MkdirAll(dst, 0o700)
	src := filepath.Join(n.procRoot(t), "var/lib/cairn") + "/."
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("keeping %s's STATE: %v\n%s", n.name, err, out)
	}
}
