package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// testKDF is a cheap proof derivation (servers publish join.NewKDF's).
var testKDF = join.KDF{Time: 1, Memory: 8, Threads: 1, Salt: []byte("0123456789abcdef")}

// byName indexes objects by Kind/name.
func byName(objs []kube.Object) map[string]kube.Object {
	out := map[string]kube.Object{}
	for _, o := range objs {
		m := o["metadata"].(map[string]any)
		out[o["kind"].(string)+"/"+m["name"].(string)] = o
	}
	return out
}

// The objects a server publishes are what the apiserver accepts and what
// the join client reads: two bootstrap tokens in Kubernetes' form, the
// agents' in system:bootstrappers only and the servers' in ServersGroup
// too; the CAs with a proof for each token; the admins' binding; and no
// Secret holding a token or a key.
func TestPublished(t *testing.T) {
	ca, clientCA := []byte("the CA bundle"), []byte("client ca")
	for _, tt := range []struct{ name, agent, agentFrom string }{
		{"an agent token", "agent-s3cret", "agent-s3cret"},
		{"only a server token", "", "s3cret"},
	} {
		objs := byName(published("s3cret", tt.agent, testKDF, ca, clientCA))
		tokens := map[string]string{} // id -> extra groups
		for name, o := range objs {
			kind, _, _ := strings.Cut(name, "/")
			if kind != "Secret" {
				continue
			}
			if o["type"] != "bootstrap.kubernetes.io/token" || o["metadata"].(map[string]any)["namespace"] != "kube-system" {
				t.Errorf("%s: %s: type %v in %v; no Secret but bootstrap tokens in kube-system", tt.name, name, o["type"], o["metadata"])
				continue
			}
			data := o["data"].(map[string]string)
			dec := func(k string) string { b, _ := base64.StdEncoding.DecodeString(data[k]); return string(b) }
			if name != "Secret/bootstrap-token-"+dec("token-id") || dec("usage-bootstrap-authentication") != "true" {
				t.Errorf("%s: %s holds %v", tt.name, name, data)
			}
			tokens[dec("token-id")+"."+dec("token-secret")] = dec("auth-extra-groups")
		}
		sid, ssec := join.ServerBootstrapToken("s3cret")
		aid, asec := join.AgentBootstrapToken(tt.agentFrom)
		if len(tokens) != 2 {
			t.Errorf("%s: %d bootstrap tokens; want the agents' and the servers'", tt.name, len(tokens))
		}
		if g, ok := tokens[aid+"."+asec]; !ok || g != "" {
			t.Errorf("%s: the agents' bootstrap token: present %v, extra groups %q; want present in none", tt.name, ok, g)
		}
		if g, ok := tokens[sid+"."+ssec]; !ok || g != join.ServersGroup {
			t.Errorf("%s: the servers' bootstrap token: present %v, extra groups %q; want %s", tt.name, ok, g, join.ServersGroup)
		}
		cm := objs["ConfigMap/"+join.CAConfigMap]["data"].(map[string]string)
		kdf, err := join.ParseKDF(cm[join.KDFKey])
		if err != nil || cm[join.CAKey] != string(ca) || cm[join.ClientCAKey] != string(clientCA) {
			t.Fatalf("%s: the published CAs: %v (%v)", tt.name, cm, err)
		}
		if cm[join.ServerProofKey] != join.Proof(kdf.Key("s3cret"), ca, clientCA) {
			t.Errorf("%s: the server proof does not verify", tt.name)
		}
		if _, has := cm[join.AgentProofKey]; has != (tt.agent != "") || (has && cm[join.AgentProofKey] != join.Proof(kdf.Key(tt.agent), ca, clientCA)) {
			t.Errorf("%s: agent proof %q", tt.name, cm[join.AgentProofKey])
		}
		crb := objs["ClusterRoleBinding/"+join.AdminsGroup]
		if crb == nil || crb["roleRef"].(map[string]string)["name"] != "cluster-admin" ||
			crb["subjects"].([]map[string]string)[0]["name"] != join.AdminsGroup || len(crb["subjects"].([]map[string]string)) != 1 {
			t.Errorf("%s: the admins' binding: %v", tt.name, crb)
		}
	}
}

// The proof costs a guess what the datastore record costs.
func TestProofKDFIsTheRecords(t *testing.T) {
	if join.ProofTime != kdfTime || join.ProofMemory != kdfMemory || join.ProofThreads != kdfThreads {
		t.Errorf("the CA proof's Argon2id (%d passes, %d KiB, %d threads) is not the datastore record's (%d, %d, %d)",
			join.ProofTime, join.ProofMemory, join.ProofThreads, kdfTime, kdfMemory, kdfThreads)
	}
}

// fakeStale is an apiserver holding what older cairns published.
type fakeStale struct {
	mu      sync.Mutex
	present map[string]bool // paths
	lists   string
}

func (f *fakeStale) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/kube-system/secrets" {
		f.lists = r.URL.RawQuery
		var items []map[string]any
		for p := range f.present {
			if n, ok := strings.CutPrefix(p, "/api/v1/namespaces/kube-system/secrets/bootstrap-token-"); ok {
				items = append(items, map[string]any{"metadata": map[string]string{"name": "bootstrap-token-" + n}})
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
		return
	}
	if r.Method == http.MethodDelete && f.present[r.URL.Path] {
		delete(f.present, r.URL.Path)
		w.Write([]byte("{}"))
		return
	}
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte(`{"kind":"Status","code":404}`))
}

// TestRemoveStale: a server removes the admin kubeconfig, the token and
// the old admin bootstrap token of older cairns, and a bootstrap token of
// an agent token no longer configured; it keeps the current ones, and
// says what it removed.
func TestRemoveStale(t *testing.T) {
	objs := published("s3cret", "", testKDF, []byte("ca"), []byte("client ca"))
	sid, _ := join.ServerBootstrapToken("s3cret")
	aid, _ := join.AgentBootstrapToken("s3cret")
	secrets := "/api/v1/namespaces/kube-system/secrets/"
	f := &fakeStale{present: map[string]bool{
		secrets + "cairn-admin-kubeconfig": true, secrets + "cairn-token": true,
		"/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/cairn:admin-kubeconfig-reader": true,
		secrets + "bootstrap-token-old001": true,
		secrets + "bootstrap-token-" + sid: true, secrets + "bootstrap-token-" + aid: true,
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	removed, err := removeStale(context.Background(), kube.New(srv.URL, kube.Options{}), objs)
	if err != nil {
		t.Fatal(err)
	}
	want := "Secret kube-system/cairn-admin-kubeconfig, Secret kube-system/cairn-token, Role kube-system/cairn:admin-kubeconfig-reader, bootstrap token old001"
	if got := strings.Join(removed, ", "); got != want {
		t.Errorf("removed %q; want %q", got, want)
	}
	if !f.present[secrets+"bootstrap-token-"+sid] || !f.present[secrets+"bootstrap-token-"+aid] || len(f.present) != 2 {
		t.Errorf("left %v; want the two current bootstrap tokens", f.present)
	}
	if !strings.Contains(f.lists, "managed-by%3Dcairn") || !strings.Contains(f.lists, "bootstrap.kubernetes.io%2Ftoken") {
		t.Errorf("listed the bootstrap tokens with %q; want only cairn's", f.lists)
	}
	// Nothing left: nothing said.
	if removed, err := removeStale(context.Background(), kube.New(srv.URL, kube.Options{}), objs); err != nil || len(removed) != 0 {
		t.Errorf("a second time: removed %v, %v", removed, err)
	}
}

// A node's credentials read the Upgrades and write their status, never
// their spec: what the upgrader does (GET the list and one Upgrade, PUT
// .../status) is allowed, and nothing else on upgrades is.
func TestPublishedUpgradeRole(t *testing.T) {
	var role kube.Object
	for _, o := range published("s3cret", "", testKDF, []byte("ca"), []byte("client ca")) {
		if o["kind"] == "ClusterRole" && o["metadata"].(map[string]any)["name"] == "cairn:upgrade-node" {
			role = o
		}
	}
	if role == nil {
		t.Fatal("no ClusterRole cairn:upgrade-node")
	}
	granted := map[string]bool{}
	for _, r := range role["rules"].([]map[string]any) {
		if !slices.Contains(r["apiGroups"].([]string), upgrade.Group) {
			continue
		}
		for _, res := range r["resources"].([]string) {
			for _, v := range r["verbs"].([]string) {
				granted[res+" "+v] = true
			}
		}
	}
	for _, want := range []string{"upgrades get", "upgrades list", "upgrades watch", "upgrades/status update"} {
		if !granted[want] {
			t.Errorf("nodes may not %s; the upgrader needs it", want)
		}
	}
	for g := range granted {
		res, verb, _ := strings.Cut(g, " ")
		if res != "upgrades/status" && !slices.Contains([]string{"get", "list", "watch"}, verb) {
			t.Errorf("nodes may %s %s: one node's credentials could rewrite an Upgrade", verb, res)
		}
	}
}

// TestJoinTokens: an agent joins with agent-token (or its file) when the
// config gives one, else with token; a server's kubelet and the agents'
// bootstrap token use the agent token when the cluster has one.
func TestJoinTokens(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent-token")
	os.WriteFile(file, []byte("  from-the-file\n"), 0o600)
	for _, tt := range []struct {
		name string
		k    config.Kubernetes
		want string
	}{
		{"token only", config.Kubernetes{Token: "server-s3cret"}, "server-s3cret"},
		{"agent-token", config.Kubernetes{Token: "server-s3cret", AgentToken: "agent-s3cret"}, "agent-s3cret"},
		{"agent-token only", config.Kubernetes{AgentToken: "agent-s3cret"}, "agent-s3cret"},
		{"agent-token-file", config.Kubernetes{Token: "server-s3cret", AgentTokenFile: file}, "from-the-file"},
	} {
		a := &agent{k: &tt.k}
		tok, err := a.token()
		if err != nil || tok.Secret != tt.want {
			t.Errorf("%s: the agent joins with %q (%v); want %q", tt.name, tok.Secret, err, tt.want)
		}
		if tt.k.Token == "" {
			continue
		}
		s := &server{k: &tt.k, tok: join.Token{Secret: tt.k.Token}}
		if at, ok, err := givenAgentToken(&tt.k); err != nil {
			t.Fatal(err)
		} else if ok {
			s.agentSecret = at.Secret
		}
		if got := s.agentJoinSecret(); got != tt.want {
			t.Errorf("%s: a server's kubelet joins with %q; want %q", tt.name, got, tt.want)
		}
	}
	if _, _, err := givenAgentToken(&config.Kubernetes{AgentTokenFile: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "kubernetes.agent-token-file") {
		t.Errorf("a missing agent-token-file: %v", err)
	}
}
