package node

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// The objects a server publishes are what the apiserver accepts and what
// cairn kubeconfig reads: a bootstrap token Secret in Kubernetes' form whose
// extra group the apiserver allows, the CA with its proof, and read access
// for exactly those who need it.
func TestPublished(t *testing.T) {
	ca := []byte("the CA bundle")
	objs := published("s3cret", ca, []byte("client ca"), []byte("admin kubeconfig"))
	byName := map[string]kube.Object{}
	for _, o := range objs {
		m := o["metadata"].(map[string]any)
		byName[o["kind"].(string)+"/"+m["name"].(string)] = o
	}
	id, secret := join.BootstrapToken("s3cret")
	tok, ok := byName["Secret/bootstrap-token-"+id]
	if !ok {
		t.Fatalf("no bootstrap token Secret bootstrap-token-%s among %d objects", id, len(objs))
	}
	if tok["type"] != "bootstrap.kubernetes.io/token" || tok["metadata"].(map[string]any)["namespace"] != "kube-system" {
		t.Errorf("bootstrap token Secret: type %v in %v; want bootstrap.kubernetes.io/token in kube-system", tok["type"], tok["metadata"])
	}
	data := tok["data"].(map[string]string)
	dec := func(k string) string { b, _ := base64.StdEncoding.DecodeString(data[k]); return string(b) }
	if dec("token-id") != id || dec("token-secret") != secret || dec("usage-bootstrap-authentication") != "true" {
		t.Errorf("bootstrap token data %v does not hold the derived token", data)
	}
	// The apiserver refuses extra groups outside system:bootstrappers:.
	for g := range strings.SplitSeq(dec("auth-extra-groups"), ",") {
		if !strings.HasPrefix(g, "system:bootstrappers:") {
			t.Errorf("extra group %q: the apiserver accepts only system:bootstrappers:*", g)
		}
	}
	cm := byName["ConfigMap/"+join.CAConfigMap]["data"].(map[string]string)
	if cm[join.CAKey] != string(ca) || join.VerifyCA(join.Token{Secret: "s3cret"}, ca, cm[join.ProofKey]) != nil {
		t.Errorf("the published CA or its proof does not verify: %v", cm)
	}
	if _, ok := byName["Secret/"+join.AdminSecret]; !ok {
		t.Error("no admin kubeconfig Secret")
	}
	rb := byName["RoleBinding/cairn:admin-kubeconfig-reader"]
	subjects := rb["subjects"].([]map[string]string)
	if len(subjects) != 1 || subjects[0]["name"] != join.AdminGroup {
		t.Errorf("the admin kubeconfig is readable by %v; want only %s", subjects, join.AdminGroup)
	}
}

// A node's credentials read the Upgrades and write their status, never
// their spec: what the upgrader does (GET the list and one Upgrade, PUT
// .../status) is allowed, and nothing else on upgrades is.
func TestPublishedUpgradeRole(t *testing.T) {
	var role kube.Object
	for _, o := range published("s3cret", []byte("ca"), []byte("client ca"), []byte("admin kubeconfig")) {
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
