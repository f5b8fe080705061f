package config

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestK3sKeys loads every key of k3s's config file (testdata/k3s-keys.txt
// names where the list comes from) under kubernetes: each is one of
// cairn's keys, or gets a message naming it, never the generic "unknown key".
func TestK3sKeys(t *testing.T) {
	f, err := os.Open("testdata/k3s-keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	implemented := fieldsOf(reflect.TypeOf(Kubernetes{}))
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		key := fields[0]
		n++
		if _, ok := implemented[key]; ok {
			continue
		}
		_, diags := Load(src("k3s.yaml", "kubernetes:\n  "+key+": x\n"))
		if len(diags) == 0 {
			t.Errorf("%s: no message", key)
			continue
		}
		d := diags[0]
		if d.Line != 2 || d.Column != 3 || !strings.Contains(d.Message, key) || strings.Contains(d.Message, "unknown key") {
			t.Errorf("%s: %s", key, d)
		}
	}
	if n < 140 {
		t.Errorf("read %d keys from testdata/k3s-keys.txt, want the whole list", n)
	}
}

// TestK3sPaste: a config written for k3s, pasted under kubernetes:, says
// what it does key by key.
func TestK3sPaste(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string // the lines printed, in order
	}{
		{"not supported yet, changes the cluster", "kubernetes:\n  flannel-conf: /etc/flannel.json\n",
			[]string{`c:2:3: error: k3s key "flannel-conf" is not supported by cairn yet (cairn runs its own pod network); remove it`}},
		{"not supported yet, harmless", "kubernetes:\n  etcd-expose-metrics: true\n",
			[]string{`c:2:3: warning: k3s key "etcd-expose-metrics" is not supported by cairn yet (etcd serves no metrics to clients); it is ignored`}},
		{"no meaning on an appliance", "kubernetes:\n  write-kubeconfig-mode: \"0644\"\n",
			[]string{"c:2:3: warning: k3s key \"write-kubeconfig-mode\" has no meaning on an appliance: nobody logs into a node; get an admin kubeconfig with `cairn kubeconfig --server URL --token T`; it is ignored"}},
		{"refused", "kubernetes:\n  docker: true\n",
			[]string{`c:2:3: error: k3s key "docker" has no meaning on an appliance: the node runs its own containerd; remove it`}},
		{"k3s's default is harmless", "kubernetes:\n  disable-kube-proxy: false\n  https-listen-port: 6443\n",
			[]string{`c:2:3: warning: k3s key "disable-kube-proxy" is set to k3s's default, which is what cairn does; it is ignored`,
				`c:3:3: warning: k3s key "https-listen-port" is set to k3s's default`}},
		{"v0.10 names", "kubernetes:\n  storage-endpoint: postgres://a:b@db/k3s\n  cluster-secret: s\n",
			[]string{`c:2:3: error: "storage-endpoint" is an old k3s name; write datastore-endpoint instead`,
				`c:3:3: error: "cluster-secret" is an old k3s name; write token instead`}},
		{"environment names", "K3S_TOKEN: s\nkubernetes:\n  K3S_URL: https://10.0.0.1:6443\n  K3S_KUBECONFIG_MODE: \"644\"\n",
			[]string{`c:1:1: error: K3S_TOKEN is k3s's environment variable for token; write token: under kubernetes`,
				`c:3:3: error: K3S_URL is k3s's environment variable for server; write server: under kubernetes`,
				`c:4:3: warning: K3S_KUBECONFIG_MODE is k3s's environment variable for write-kubeconfig-mode; k3s key "write-kubeconfig-mode" has no meaning on an appliance`}},
		{"install script", "INSTALL_K3S_EXEC: server --tls-san x\n",
			[]string{`c:1:1: error: INSTALL_K3S_EXEC is a setting of k3s's install script, and cairn installs nothing: write the flags of INSTALL_K3S_EXEC as keys under kubernetes`}},
		{"k3s keys at the top level", "token: s\nflannel-backend: none\n",
			[]string{`c:1:1: error: token is a key of the kubernetes section; move it under kubernetes:`,
				`c:2:1: error: flannel-backend is a key of the kubernetes section; move it under kubernetes:`}},
		{"cloud-init ntp shape", "ntp:\n  enabled: true\n  ntp_client: chrony\n  servers: [10.0.0.1]\n",
			[]string{`c:3:3: warning: ntp.ntp_client is ignored: cairn syncs the clock with its own NTP client`}},
		{"ntp disabled", "ntp: {enabled: false}\n",
			[]string{`c:1:7: warning: ntp.enabled: false is ignored: the node needs a synced clock before any TLS, so cairn always syncs it`}},
		{"write_files defer", "write_files:\n  - path: /a\n    defer: false\n  - path: /b\n    defer: true\n",
			[]string{`c:5:5: warning: write_files[1].defer is ignored: cairn writes every file before any service starts`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Load(src("c", tt.doc))
			got := messages(diags)
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tt.want), got)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d = %q, want it to start %q", i+1, lines[i], w)
				}
			}
		})
	}
}

// TestK3sListForms: repeatable keys take one string as k3s does, split at
// commas where k3s splits them; the comma-separated keys take a list.
func TestK3sListForms(t *testing.T) {
	cfg, diags := Load(src("c", `kubernetes:
  tls-san: "a.example.com, 10.0.0.5"
  disable: [traefik, "servicelb,metrics-server"]
  node-label: zone=a
  node-taint: dedicated=db:NoSchedule
  kube-apiserver-arg: enable-admission-plugins=NodeRestriction,PodSecurity
  cluster-cidr: [10.42.0.0/16, "fd00:42::/56"]
  service-cidr: [10.43.0.0/16, "fd00:43::/112"]
`))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	k := cfg.Kubernetes
	for _, c := range []struct {
		key  string
		got  any
		want any
	}{
		{"tls-san", k.TLSSAN, []string{"a.example.com", "10.0.0.5"}},
		{"disable", k.Disable, []string{"traefik", "servicelb", "metrics-server"}},
		{"node-label", k.NodeLabel, []string{"zone=a"}},
		{"node-taint", k.NodeTaint, []string{"dedicated=db:NoSchedule"}},
		{"kube-apiserver-arg", k.KubeAPIServerArg, []string{"enable-admission-plugins=NodeRestriction,PodSecurity"}},
		{"cluster-cidr", k.ClusterCIDR, "10.42.0.0/16,fd00:42::/56"},
		{"service-cidr", k.ServiceCIDR, "10.43.0.0/16,fd00:43::/112"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %q, want %q", c.key, c.got, c.want)
		}
	}
	// A bad entry of a single string is located at the string.
	_, diags = Load(src("c", "kubernetes:\n  node-label: \"-zone=a\"\n"))
	if got := messages(diags); !strings.HasPrefix(got, `c:2:15: error: kubernetes.node-label[0] "-zone=a" has key "-zone"`) {
		t.Errorf("got:\n%s", got)
	}
}
