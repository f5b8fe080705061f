package render

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairn-os/cairn/config"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const (
	token    = "a-long-shared-secret-of-the-render-tests"
	password = "s3cret-pw"
)

var cases = []struct {
	name string
	doc  string
}{
	{"ha-server-postgres", `#cloud-config
kubernetes:
  token: ` + token + `
  datastore-endpoint: postgres://k3s:` + password + `@192.168.1.5:5432/k3s?sslmode=verify-full
  datastore-cafile: /etc/cairn/datastore-ca.pem
  vip: 192.168.1.100
  tls-san: [k8s.example.com]
  node-label: [zone=a, disk=ssd]
  node-taint: ["CriticalAddonsOnly=true:NoExecute"]
  secrets-encryption: true
  kube-apiserver-arg: ["v=2", "--profiling=true"]
  kubelet-arg: [max-pods=200]
`},
	{"server-mysql-tls", `kubernetes:
  token: ` + token + `
  datastore-endpoint: mysql://k3s:` + password + `@tcp(db.example.com:3306)/k3s
  datastore-cafile: /etc/cairn/ca.pem
  datastore-certfile: /etc/cairn/client.pem
  datastore-keyfile: /etc/cairn/client-key.pem
  vip: 10.0.0.100
`},
	{"server-embedded-etcd", `kubernetes:
  cluster-cidr: 10.244.0.0/16
  service-cidr: 10.96.0.0/12
  cluster-domain: k8s.internal
`},
	{"server-external-etcd", `kubernetes:
  token: ` + token + `
  datastore-endpoint: https://10.0.0.5:2379,https://10.0.0.6:2379
  datastore-cafile: /etc/cairn/etcd-ca.pem
  datastore-certfile: /etc/cairn/etcd.pem
  datastore-keyfile: /etc/cairn/etcd-key.pem
  kube-proxy-arg: [v=4]
`},
	{"agent", `kubernetes:
  role: agent
  token: ` + token + `
  vip: 192.168.1.100
  node-label: [zone=b]
  node-taint: ["dedicated=gpu:NoSchedule"]
`},
}

func load(t *testing.T, doc string) *config.Config {
	t.Helper()
	cfg, diags := config.Load(config.Source{Name: "test", Data: []byte(doc)})
	if diags.HasErrors() {
		t.Fatalf("test document invalid: %v", diags.Err())
	}
	return cfg
}

var testNode = Node{Name: "node-1", IP: "192.168.1.11", Token: token, Encryption: &testEncryption}

// testEncryption is a cluster's keys after a rotation from a cluster an
// older cairn encrypted: the new key writes, the older ones still read.
var testEncryption = Encryption{Write: "key-2", Keys: []EncryptionKey{
	{Name: "key-2", Provider: ProviderSecretbox, Secret: bytes.Repeat([]byte{2}, 32)},
	{Name: "key-1", Provider: ProviderSecretbox, Secret: bytes.Repeat([]byte{1}, 32)},
	{Name: "cairn-v1", Provider: ProviderAESCBC, Secret: bytes.Repeat([]byte{9}, 32)},
}}

func show(b *bytes.Buffer, c Command) {
	fmt.Fprintf(b, "=== %s\n", c.Name)
	for _, a := range c.Args {
		fmt.Fprintf(b, "  %s\n", a)
	}
	for _, e := range c.Env {
		fmt.Fprintf(b, "env %s\n", e)
	}
	for _, f := range c.Files {
		fmt.Fprintf(b, "--- file %s (mode %04o)\n%s", f.Path, f.Mode, f.Data)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestComponents renders every component for each case and compares with
// the golden file; it also checks that no secret reaches an argument list
// and that every file holding one is mode 0600.
func TestComponents(t *testing.T) {
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			cfg := load(t, tt.doc)
			cmds, err := Components(cfg, testNode)
			if err != nil {
				t.Fatal(err)
			}
			if k3s, err := K3s(cfg, testNode); err != nil {
				t.Fatal(err)
			} else {
				cmds = append(cmds, *k3s)
			}
			var b bytes.Buffer
			for _, c := range cmds {
				show(&b, c)
				for _, a := range c.Args {
					if strings.Contains(a, token) || strings.Contains(a, password) {
						t.Errorf("%s: secret on the command line: %s", c.Name, a)
					}
				}
				for _, f := range c.Files {
					secret := strings.Contains(string(f.Data), token) || strings.Contains(string(f.Data), password) || strings.Contains(string(f.Data), "secret: ")
					if secret && f.Mode != 0o600 {
						t.Errorf("%s: %s holds a secret but has mode %04o", c.Name, f.Path, f.Mode)
					}
				}
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}

func TestComponentsByRole(t *testing.T) {
	names := func(cmds []Command) string {
		var n []string
		for _, c := range cmds {
			n = append(n, c.Name)
		}
		return strings.Join(n, " ")
	}
	for _, tt := range []struct{ doc, want string }{
		{cases[0].doc, "kine kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy flannel"},
		{cases[2].doc, "etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy flannel"},
		{cases[3].doc, "kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy flannel"},
		{cases[4].doc, "containerd kubelet kube-proxy flannel"},
	} {
		cmds, err := Components(load(t, tt.doc), testNode)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(cmds); got != tt.want {
			t.Errorf("components = %q, want %q", got, tt.want)
		}
	}
	agent := load(t, cases[4].doc)
	if _, err := APIServer(agent, testNode); err == nil || !strings.Contains(err.Error(), `this node's role is "agent"`) {
		t.Errorf("APIServer on an agent: err = %v", err)
	}
}

func TestExtraArgsOverride(t *testing.T) {
	cmd, err := APIServer(load(t, cases[0].doc), testNode)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(cmd.Args, " ")
	if !strings.Contains(args, "--profiling=true") || strings.Contains(args, "--profiling=false") {
		t.Errorf("kube-apiserver-arg profiling=true did not replace the default: %s", args)
	}
	if !strings.HasSuffix(args, "--v=2") {
		t.Errorf("a new flag goes last: %s", args)
	}
}

func TestCheckNoSecrets(t *testing.T) {
	c := &Command{Name: "x", Args: []string{"--endpoint=postgres://u:pw123@h/db"}}
	if err := checkNoSecrets(c, "pw123"); err == nil {
		t.Errorf("a password in the arguments must be refused")
	}
}

// Every key of the rendered k3s config is one k3s documents for the
// node's role (testdata/k3s-keys.txt names the source), and the file is
// 0600: it holds the token and the datastore password.
func TestK3sKeysAreK3s(t *testing.T) {
	data, err := os.ReadFile("testdata/k3s-keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for l := range strings.SplitSeq(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			known[l] = true
		}
	}
	for _, tt := range cases {
		cfg := load(t, tt.doc)
		cmd, err := K3s(cfg, testNode)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		role := cfg.Kubernetes.Role
		if len(cmd.Args) != 1 || cmd.Args[0] != role || cmd.Name != "k3s" {
			t.Errorf("%s: command %s %q, want k3s %s", tt.name, cmd.Name, cmd.Args, role)
		}
		f := cmd.Files[0]
		if f.Mode != 0o600 || f.Path != "/etc/rancher/k3s/config.yaml" {
			t.Errorf("%s: %s mode %v, want /etc/rancher/k3s/config.yaml 0600", tt.name, f.Path, f.Mode)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(f.Data, &doc); err != nil {
			t.Fatalf("%s: the k3s config does not parse: %v", tt.name, err)
		}
		for key := range doc {
			if !known[role+" "+key] {
				t.Errorf("%s: k3s %s has no config key %q (testdata/k3s-keys.txt)", tt.name, role, key)
			}
		}
	}
}

func TestKineSQLiteParams(t *testing.T) {
	for _, tt := range []struct{ endpoint, want string }{
		// Without parameters kine's SQLite is locked under the apiserver's start.
		{"sqlite:///var/lib/cairn/state.db", "KINE_ENDPOINT=sqlite:///var/lib/cairn/state.db?" + SQLiteParams},
		// The user's own are kept as given.
		{"sqlite:///var/lib/cairn/state.db?_busy_timeout=5000", "KINE_ENDPOINT=sqlite:///var/lib/cairn/state.db?_busy_timeout=5000"},
	} {
		cfg := load(t, "kubernetes:\n  token: "+token+"\n  datastore-endpoint: \""+tt.endpoint+"\"\n")
		c, err := Kine(cfg, testNode)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Env) != 1 || c.Env[0] != tt.want {
			t.Errorf("%s: kine's env = %v, want %s", tt.endpoint, c.Env, tt.want)
		}
	}
}
