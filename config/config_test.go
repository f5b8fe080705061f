package config

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func src(name, doc string) Source { return Source{Name: name, Data: []byte(doc)} }

// messages renders diagnostics the way cairn validate prints them.
// wantInOrder checks that got holds each of want, in that order.
func wantInOrder(t *testing.T, got string, want []string) {
	t.Helper()
	rest := got
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("diagnostics lack %q (in order); got:\n%s", w, got)
			return
		}
		rest = rest[i+len(w):]
	}
}

func messages(ds Diagnostics) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.String() + "\n")
	}
	return b.String()
}

// TestCheck runs single documents through Load and asserts on the exact
// lines a user sees; each case is one rule of the contract.
func TestCheck(t *testing.T) {
	const agentOK = "kubernetes:\n  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  vip: 10.0.0.100\n"
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the printed diagnostics, in order
		ok   bool     // no errors expected
	}{
		{"only the parse error for a key that failed to parse", "kubernetes:\n  role: agent\n  token: [a]\n  vip: 10.0.0.100\n",
			[]string{"c:3:10: error: kubernetes.token must be a string, not a list\n"}, false},
		{"agent ok", agentOK, nil, true},
		{"agent without token", "kubernetes:\n  role: agent\n  vip: 10.0.0.100\n",
			[]string{"c:2:9: error: kubernetes: an agent needs token (or token-file)"}, false},
		{"agent without server or vip", "kubernetes:\n  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n",
			[]string{"c:2:9: error: kubernetes: an agent needs server (https://host:6443) or vip"}, false},
		{"agent with server only", "kubernetes:\n  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  server: https://k8s.example.com:6443\n", nil, true},
		{"agent server not https", "kubernetes:\n  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  server: http://10.0.0.1:6443\n",
			[]string{`c:4:11: error: kubernetes.server "http://10.0.0.1:6443" must use https://`}, false},
		{"agent datastore ignored", agentOK + "  datastore-endpoint: postgres://a:b@h/db\n",
			[]string{"c:5:23: warning: kubernetes.datastore-endpoint is a server setting; agents ignore it"}, true},
		{"server with datastore and no token", "kubernetes:\n  datastore-endpoint: postgres://a:b@h/db\n",
			[]string{"c:2:23: error: kubernetes: a server with a datastore-endpoint needs token"}, false},
		{"server embedded etcd without token", "kubernetes:\n  role: server\n", nil, true},
		{"token and token-file", "kubernetes:\n  token: a\n  token-file: /t\n",
			[]string{"c:3:15: error: kubernetes.token and kubernetes.token-file are both set; keep one"}, false},
		{"vip does not parse", "kubernetes:\n  vip: 10.0.0.300\n",
			[]string{`c:2:8: error: kubernetes.vip "10.0.0.300" is not an IP address`}, false},
		{"vip in service cidr", "kubernetes:\n  vip: 10.43.1.1\n",
			[]string{"c:2:8: error: kubernetes.vip 10.43.1.1 is inside kubernetes.service-cidr 10.43.0.0/16"}, false},
		{"vip in cluster cidr", "kubernetes:\n  vip: 10.42.1.1\n",
			[]string{"c:2:8: error: kubernetes.vip 10.42.1.1 is inside kubernetes.cluster-cidr 10.42.0.0/16"}, false},
		{"vip equals node-ip", "kubernetes:\n  vip: 10.0.0.5\n  node-ip: 10.0.0.5\n",
			[]string{"error: kubernetes.vip 10.0.0.5 is also this node's node-ip"}, false},
		{"cidr does not parse", "kubernetes:\n  service-cidr: 10.43.0.0\n",
			[]string{`c:2:17: error: kubernetes.service-cidr: "10.43.0.0" is not a CIDR`}, false},
		{"cidrs overlap", "kubernetes:\n  cluster-cidr: 10.0.0.0/8\n",
			[]string{"error: kubernetes.cluster-cidr 10.0.0.0/8 and kubernetes.service-cidr 10.43.0.0/16 overlap"}, false},
		{"cluster-dns outside service-cidr", "kubernetes:\n  cluster-dns: 10.42.0.10\n",
			[]string{"c:2:16: error: kubernetes.cluster-dns 10.42.0.10 is outside kubernetes.service-cidr 10.43.0.0/16"}, false},
		{"cluster-dns is the kubernetes service", "kubernetes:\n  cluster-dns: 10.43.0.1\n",
			[]string{"error: kubernetes.cluster-dns 10.43.0.1 is the first address of service-cidr"}, false},
		{"cluster-dns derived from service-cidr", "kubernetes:\n  service-cidr: 10.96.0.0/12\n", nil, true},
		{"host bits warn", "kubernetes:\n  cluster-cidr: 10.42.0.1/16\n",
			[]string{"warning: kubernetes.cluster-cidr has host bits set; it is read as 10.42.0.0/16"}, true},
		{"dual stack", "kubernetes:\n  cluster-cidr: 10.42.0.0/16,fd00:42::/56\n  service-cidr: 10.43.0.0/16,fd00:43::/112\n", nil, true},
		{"taint without effect", "kubernetes:\n  node-taint: [a=b]\n",
			[]string{`error: kubernetes.node-taint[0] "a=b" is not key=value:Effect`}, false},
		{"taint bad effect", "kubernetes:\n  node-taint: [\"a=b:Never\"]\n",
			[]string{`kubernetes.node-taint[0] "a=b:Never" has effect "Never"`}, false},
		{"taint without value", "kubernetes:\n  node-taint: [\"dedicated:NoSchedule\"]\n", nil, true},
		{"label bad key", "kubernetes:\n  node-label: [\"-zone=a\"]\n",
			[]string{`kubernetes.node-label[0] "-zone=a" has key "-zone"`}, false},
		{"label bad prefix", "kubernetes:\n  node-label: [\"Example.COM/zone=a\"]\n",
			[]string{`has key prefix "Example.COM"`}, false},
		{"label too long", "kubernetes:\n  node-label: [\"zone=" + strings.Repeat("a", 64) + "\"]\n",
			[]string{"which is not a Kubernetes label value"}, false},
		{"interface without addressing", "network:\n  version: 2\n  ethernets:\n    eth0: {}\n",
			[]string{"c:4:5: error: network.ethernets.eth0 has neither dhcp4: true nor addresses"}, false},
		{"bond member needs no addressing", "network:\n  version: 2\n  ethernets: {a: {}, b: {}}\n  bonds: {bond0: {interfaces: [a, b], dhcp4: true}}\n", nil, true},
		{"bond member unknown", "network:\n  version: 2\n  ethernets: {a: {dhcp4: true}}\n  bonds: {bond0: {interfaces: [a, c], dhcp4: true}}\n",
			[]string{`network.bonds.bond0.interfaces[1] "c" is not an interface under network.ethernets`}, false},
		{"bond mode", "network:\n  version: 2\n  ethernets: {a: {}}\n  bonds: {bond0: {interfaces: [a], dhcp4: true, parameters: {mode: fastest}}}\n",
			[]string{`network.bonds.bond0.parameters.mode "fastest" is not one of`}, false},
		{"network version 1", "network:\n  version: 1\n  config: []\n",
			[]string{"c:2:12: error: network.version is 1; cairn reads only network config version 2", `c:3:3: error: unknown key "config" in network`}, false},
		{"network version missing", "network:\n  ethernets: {eth0: {dhcp4: true}}\n",
			[]string{"c:1:1: error: network.version is missing"}, false},
		{"relative write_files path", "write_files:\n  - path: etc/x\n",
			[]string{`c:2:11: error: write_files[0].path "etc/x" is relative`}, false},
		{"write_files without path", "write_files:\n  - content: x\n",
			[]string{"c:2:5: error: write_files[0] has no path"}, false},
		{"write_files gzip", "write_files:\n  - path: /x\n    encoding: gz+b64\n    content: H4sIAAAAAAAAA8tIzcnJBwCGphA2BQAAAA==\n", nil, true},
		{"write_files bad owner", "write_files:\n  - path: /x\n    owner: \"root:root:root\"\n",
			[]string{`write_files[0].owner "root:root:root" is not user:group`}, false},
		{"unknown encoding", "write_files:\n  - path: /x\n    encoding: rot13\n",
			[]string{`c:3:15: error: write_files[0].encoding "rot13" is not one of`}, false},
		{"ignored key is a warning", "runcmd: [reboot]\n",
			[]string{"c:1:1: warning: runcmd is a cloud-init key cairn does not implement (cairn runs no scripts); it is ignored"}, true},
		{"unknown top-level key", "hostnme: x\n",
			[]string{`c:1:1: error: unknown key "hostnme" at the top level; did you mean "hostname"?`}, false},
		{"unknown kubernetes key", "kubernetes:\n  bogus-key: true\n",
			[]string{`c:2:3: error: unknown key "bogus-key" in kubernetes`}, false},
		{"string where list belongs", "ntp:\n  pools: pool.ntp.org\n",
			[]string{"c:2:10: error: ntp.pools must be a list of strings, not a string (write [pool.ntp.org])"}, false},
		{"mapping where string belongs", "kubernetes:\n  token: {a: b}\n",
			[]string{"c:2:10: error: kubernetes.token must be a string, not a mapping"}, false},
		{"bool", "kubernetes:\n  secrets-encryption: sometimes\n",
			[]string{`c:2:23: error: kubernetes.secrets-encryption must be true or false, not "sometimes"`}, false},
		{"top level list", "- a\n", []string{"c:1:1: error: top level must be a mapping of keys, not a list"}, false},
		{"sysctl bad name", "sysctl:\n  \"net ipv4\": 1\n", []string{`sysctl "net ipv4" is not a sysctl name`}, false},
		{"disable unknown", "kubernetes:\n  disable: [traefik, dashboard]\n",
			[]string{`warning: kubernetes.disable[1] "dashboard" is neither a component k3s packages (coredns, servicelb, traefik, local-storage, metrics-server, runtimes) nor a manifest of kubernetes.manifests or write_files; it is ignored unless a manifest of that name is in /var/lib/cairn/manifests`}, true},
		{"extra args", "kubernetes:\n  kubelet-arg: [\"max-pods=200\", \"--v=2\", \"bad flag\"]\n",
			[]string{`kubernetes.kubelet-arg[2] "bad flag" is not a flag`}, false},
		{"anchors and merge keys", "x-base: &b {role: agent, token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J}\n", []string{`unknown key "x-base"`}, false},
		{"parse and validation errors together", "kubernetes:\n  token: [x]\n  vip: 10.0.0.300\n",
			[]string{"c:2:10: error: kubernetes.token must be a string", `c:3:8: error: kubernetes.vip "10.0.0.300" is not an IP address`}, false},
		{"merge key into itself", "kubernetes: &x {<<: *x}\n", []string{"c:1:17: error: kubernetes: the merge key (<<) names a mapping that contains it"}, false},
		{"merge key", "kubernetes:\n  <<: {role: agent, token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J}\n  vip: 10.0.0.100\n", nil, true},
		{"alias expansion is bounded", aliasBomb(), []string{"error: document has more than 10000 values, aliases expanded; cairn refuses it"}, false},
		{"two documents", "hostname: a\n---\nhostname: b\n", []string{"c:2:1: error: a cloud-config is one YAML document"}, false},
		{"mime", "Content-Type: multipart/mixed; boundary=x\n", []string{"c:1:1: error: this is a MIME multipart document, not a cloud-config"}, false},
		{"jinja", "## template: jinja\n#cloud-config\n", []string{"this is a Jinja template"}, false},
		{"crlf and bom", "\xef\xbb\xbf#cloud-config\r\nhostname: a\r\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Load(src("c", tt.doc))
			got := messages(diags)
			if tt.ok == diags.HasErrors() {
				t.Errorf("HasErrors() = %v, want %v; diagnostics:\n%s", diags.HasErrors(), !tt.ok, got)
			}
			if tt.ok != (cfg != nil) {
				t.Errorf("cfg returned: %v, want %v", cfg != nil, tt.ok)
			}
			wantInOrder(t, got, tt.want)
			if strings.HasPrefix(tt.name, "only ") && got != strings.Join(tt.want, "") {
				t.Errorf("want exactly:\n%s\ngot:\n%s", strings.Join(tt.want, ""), got)
			}
			if tt.want == nil && len(diags) > 0 {
				t.Errorf("unexpected diagnostics:\n%s", got)
			}
		})
	}
}

// aliasBomb is a small document whose aliases expand to more values than
// the decoder's budget.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("network:\n  version: 2\n  ethernets:\n    e0: {dhcp4: true, addresses: &a [")
	for i := 0; i < 2000; i++ {
		b.WriteString("10.0.0.1/24,")
	}
	b.WriteString("]}\n")
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&b, "    e%d: {addresses: *a}\n", i)
	}
	return b.String()
}

func TestLoadMergesSources(t *testing.T) {
	baked := src("baked", `#cloud-config
hostname: default
write_files: [{path: /etc/a, content: a}]
sysctl: {vm.swappiness: "10", net.ipv4.ip_forward: "1"}
ntp: {servers: [time.example.com]}
kubernetes:
  role: agent
  vip: 10.0.0.100
  node-label: [zone=a]
`)
	seed := src("user-data", `#cloud-config
hostname: node-7
write_files: [{path: /etc/b, content: b}]
sysctl: {vm.swappiness: "1"}
kubernetes:
  token: secretW4Kp8Rt2Zx6Qv9Ln3
  node-label: [zone=b]
  node-taint: ["x:Bogus"]
`)
	cfg, diags := Load(baked, seed)
	if cfg != nil {
		t.Fatalf("want an error from the taint, got none")
	}
	// The taint error points into the source that set it.
	if got := messages(diags); !strings.HasPrefix(got, `user-data:8:16: error: kubernetes.node-taint[0] "x:Bogus"`) {
		t.Errorf("diagnostics:\n%s", got)
	}
	seed.Data = bytes.Replace(seed.Data, []byte(`node-taint: ["x:Bogus"]`), []byte(`node-taint: ["x:NoSchedule"]`), 1)
	cfg, diags = Load(baked, seed)
	if diags.HasErrors() {
		t.Fatalf("unexpected errors:\n%s", messages(diags))
	}
	k := cfg.Kubernetes
	checks := []struct{ what, got, want string }{
		{"hostname (later wins)", cfg.Hostname, "node-7"},
		{"role (kept from baked)", k.Role, "agent"},
		{"token (added by seed)", k.Token, "secretW4Kp8Rt2Zx6Qv9Ln3"},
		{"node-label (later wins per key)", strings.Join(k.NodeLabel, ","), "zone=b"},
		{"server (default from vip)", k.Server, "https://10.0.0.100:6443"},
		{"sysctl merged per key", cfg.Sysctl["vm.swappiness"] + "," + cfg.Sysctl["net.ipv4.ip_forward"], "1,1"},
		{"ntp kept", strings.Join(cfg.NTP.Servers, ","), "time.example.com"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if len(cfg.WriteFiles) != 2 || cfg.WriteFiles[0].Path != "/etc/a" || cfg.WriteFiles[1].Path != "/etc/b" {
		t.Errorf("write_files not appended in order: %+v", cfg.WriteFiles)
	}
	if got := strings.Join(cfg.Sources(), ","); got != "baked,user-data" {
		t.Errorf("Sources() = %q", got)
	}
	// A parse error in one source is reported with that source's name,
	// along with the other sources' errors.
	_, diags = Load(src("a", "hostname: [x]\n"), src("b", "bogus: 1\n"))
	if got := messages(diags); !strings.Contains(got, "a:1:11: error") || !strings.Contains(got, "b:1:1: error") {
		t.Errorf("want errors from both sources, got:\n%s", got)
	}
	// The write_files index of a later source shifts; its location stays.
	_, diags = Load(src("a", "write_files: [{path: /a}]\n"), src("b", "write_files:\n  - path: rel\n"))
	if got := messages(diags); !strings.Contains(got, `b:2:11: error: write_files[1].path "rel" is relative`) {
		t.Errorf("got:\n%s", got)
	}
}

func TestDiagnosticsErr(t *testing.T) {
	_, diags := Load(src("x.yaml", "runcmd: [a]\nkubernetes:\n  vip: nope\n  role: boss\n"))
	err := diags.Err()
	if err == nil || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Err() = %v, want an error wrapping ErrInvalid", err)
	}
	want := "invalid cloud-config (2 errors):\nx.yaml:3:8: error: kubernetes.vip \"nope\" is not an IP address\nx.yaml:4:9: error: kubernetes.role \"boss\" is not server or agent"
	if err.Error() != want {
		t.Errorf("Err() =\n%s\nwant\n%s", err, want)
	}
	if w := diags.Warnings(); len(w) != 1 || w.Err() != nil {
		t.Errorf("Warnings() = %v: want the one runcmd warning, and warnings alone must not be an error", w)
	}
}

func TestParseGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("#cloud-config\nhostname: zipped\n"))
	zw.Close()
	cfg, diags := Parse(Source{Name: "user-data", Data: buf.Bytes()})
	if diags.HasErrors() || cfg.Hostname != "zipped" {
		t.Fatalf("cfg=%+v diags=%s", cfg, messages(diags))
	}
}

func TestParseNetwork(t *testing.T) {
	for _, doc := range []string{
		"version: 2\nethernets:\n  eth0: {dhcp4: true}\n",
		"network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true}\n",
	} {
		nw, diags := ParseNetwork(src("network-config", doc))
		if diags.HasErrors() || nw == nil || !nw.Ethernets["eth0"].DHCP4 {
			t.Errorf("ParseNetwork(%q) = %+v, %s", doc, nw, messages(diags))
		}
	}
	_, diags := ParseNetwork(src("network-config", "version: 1\nconfig: []\n"))
	if got := messages(diags); !strings.Contains(got, `network-config:2:1: error: unknown key "config" in network`) || !strings.Contains(got, "network-config:1:10: error: network.version is 1") {
		t.Errorf("got:\n%s", got)
	}
	// As a Load source, a network-config sets network (replacing the
	// user-data's) and its diagnostics point into the file as written.
	user := src("user-data", "hostname: a\nnetwork:\n  version: 2\n  ethernets: {eth9: {dhcp4: true}}\n")
	netcfg := Source{Name: "network-config", Kind: NetworkConfig, Data: []byte("version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.300/24]\n")}
	_, diags = Load(user, netcfg)
	if got := messages(diags); got != "network-config:4:17: error: network.ethernets.eth0.addresses[0] \"10.0.0.300/24\" is not an address with a prefix length, like 192.168.1.11/24\n" {
		t.Errorf("got:\n%s", got)
	}
	netcfg.Data = []byte("network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true}\n")
	cfg, diags := Load(user, netcfg)
	if diags.HasErrors() || cfg.Hostname != "a" || len(cfg.Network.Ethernets) != 1 || !cfg.Network.Ethernets["eth0"].DHCP4 {
		t.Errorf("cfg = %+v, %s", cfg, messages(diags))
	}
}

func TestDatastore(t *testing.T) {
	tests := []struct {
		endpoint string
		kind     DatastoreKind
		hosts    string
		db       string
		redacted string
		err      string
	}{
		{"", DatastoreEmbedded, "", "", "", ""},
		{"postgres://k3s:s3cret@192.168.1.5:5432/k3s?sslmode=verify-full", DatastorePostgres, "192.168.1.5:5432", "k3s",
			"postgres://k3s:<redacted>@192.168.1.5:5432/k3s?sslmode=verify-full", ""},
		{"postgres://k3s:p%40ss@db/k3s", DatastorePostgres, "db:5432", "k3s", "postgres://k3s:<redacted>@db/k3s", ""},
		{"postgres://db.example.com/k3s?user=k3s&password=hunter2&sslmode=disable", DatastorePostgres, "db.example.com:5432", "k3s",
			"postgres://db.example.com/k3s?user=k3s&password=<redacted>&sslmode=disable", ""},
		{"mysql://k3s:s3cret@tcp(db.example.com:3306)/k3s", DatastoreMySQL, "db.example.com:3306", "k3s",
			"mysql://k3s:<redacted>@tcp(db.example.com:3306)/k3s", ""},
		{"mysql://k3s:p@ss@tcp(db)/k3s?tls=true", DatastoreMySQL, "db:3306", "k3s", "mysql://k3s:<redacted>@tcp(db)/k3s?tls=true", ""},
		{"mysql://k3s:x@db:3306/k3s", "", "", "", "", "does not name its server as tcp(host:port)"},
		{"mysql://k3s:x@tcp(db:3306)", "", "", "", "", "has no /database after the address"},
		{"https://10.0.0.5:2379,https://10.0.0.6:2379", DatastoreEtcd, "10.0.0.5:2379,10.0.0.6:2379", "", "https://10.0.0.5:2379,https://10.0.0.6:2379", ""},
		{"http://etcd:2379", DatastoreEtcd, "etcd:2379", "", "http://etcd:2379", ""},
		{"https://u:p@etcd:2379", "", "", "", "", "carries a user name"},
		{"https://etcd:99999", "", "", "", "", `port "99999" is not a number from 1 to 65535`},
		{"sqlite:///var/lib/cairn/state.db", DatastoreSQLite, "", "/var/lib/cairn/state.db", "sqlite:///var/lib/cairn/state.db", ""},
		{"redis://x", "", "", "", "", `datastore scheme "redis" is not supported`},
		{"k3s:secret@db", "", "", "", "", "is not an endpoint URL"},
	}
	for _, tt := range tests {
		d, err := ParseDatastore(tt.endpoint)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDatastore(%q) error = %v, want %q", tt.endpoint, err, tt.err)
			}
			if err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), ":x@")) {
				t.Errorf("error leaks the password: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDatastore(%q): %v", tt.endpoint, err)
			continue
		}
		got := []string{string(d.Kind), strings.Join(d.Hosts, ","), d.Database, d.Redacted()}
		want := []string{string(tt.kind), tt.hosts, tt.db, tt.redacted}
		if strings.Join(got, " | ") != strings.Join(want, " | ") {
			t.Errorf("ParseDatastore(%q) = %q, want %q", tt.endpoint, got, want)
		}
	}
}

func TestRedacted(t *testing.T) {
	cfg, diags := Load(src("c", `write_files:
  - {path: /etc/key.pem, content: "-----BEGIN PRIVATE KEY-----\nabc\n", permissions: "0644"}
  - {path: /etc/secret, content: hunter2, permissions: "0600"}
  - {path: /etc/motd, content: hello}
kubernetes:
  token: hunter3Xq7Lm2Rz9Vk4Tp8W
  datastore-endpoint: postgres://u:hunter4@db/k3s
`))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	b, err := cfg.Redacted().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, s := range []string{"hunter2", "hunter3", "hunter4", "abc"} {
		if strings.Contains(out, s) {
			t.Errorf("printed config contains secret %q:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "hello") || !strings.Contains(out, "postgres://u:<redacted>@db/k3s") {
		t.Errorf("redaction removed too much:\n%s", out)
	}
	// The original is untouched.
	if cfg.Kubernetes.Token != "hunter3Xq7Lm2Rz9Vk4Tp8W" || cfg.WriteFiles[1].Content != "hunter2" {
		t.Errorf("Redacted changed the original")
	}
	// What Marshal prints parses back to the same config.
	again, diags := Load(src("again", string(b)))
	if diags.HasErrors() || again.Hostname != cfg.Hostname || len(again.WriteFiles) != 3 {
		t.Errorf("marshalled config does not load back: %s", messages(diags))
	}
}

func TestJoinToken(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "token")
	if err := os.WriteFile(f, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		k    Kubernetes
		want string
		err  string
	}{
		{Kubernetes{Token: "inline"}, "inline", ""},
		{Kubernetes{TokenFile: f}, "from-file", ""},
		{Kubernetes{}, "", ""},
		{Kubernetes{TokenFile: filepath.Join(dir, "missing")}, "", "kubernetes.token-file: reading the token"},
	} {
		got, err := tt.k.JoinToken()
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("JoinToken(%+v) = %q, %v; want %q, %q", tt.k, got, err, tt.want, tt.err)
		}
	}
}

func TestWriteFileHelpers(t *testing.T) {
	w := WriteFile{Path: "/x", Content: "aGVsbG8=", Encoding: "b64", Permissions: "0640", Owner: "1000:100"}
	b, err := w.Decode()
	if err != nil || string(b) != "hello" {
		t.Errorf("Decode = %q, %v", b, err)
	}
	if m, err := w.Mode(); err != nil || m != 0o640 {
		t.Errorf("Mode = %v, %v", m, err)
	}
	if !w.Secret() {
		t.Errorf("a file with mode 0640 is not world-readable and must count as secret")
	}
}

func TestPanicBecomesDiagnostic(t *testing.T) {
	cfg, diags := func() (cfg *Config, diags Diagnostics) {
		defer recoverInto("user-data", &cfg, &diags)
		cfg = &Config{}
		var m map[string]int
		m["boom"] = 1 // a nil-map write stands in for a bug
		return cfg, nil
	}()
	if cfg != nil || !diags.HasErrors() || !strings.HasPrefix(diags[0].String(), "user-data:1:1: error: internal error while reading the config") {
		t.Errorf("cfg = %v, diags = %v", cfg, diags)
	}
}

// A config built in code has no locations; its diagnostics say so.
func TestValidateInCode(t *testing.T) {
	c := &Config{Kubernetes: Kubernetes{Role: "agent", VIP: "10.0.0.100"}}
	got := messages(c.Validate())
	want := "<config>: error: kubernetes: an agent needs token (or token-file) to join the cluster, or agent-token (or agent-token-file); use the servers' agent-token, or their token when they have none\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if c.Kubernetes.ClusterCIDR != "" {
		t.Errorf("Validate filled defaults into the caller's config")
	}
}

// A datastore password is hidden in every form a program may print it
// in: as it is, as the endpoint writes it (upper- or lower-case
// percent-encoding, in the user info or a password parameter whose name
// is encoded too), as Go rebuilds a URL, and quoted.
func TestDatastoreRedact(t *testing.T) {
	const pw = `p@ss/w:rd%"`
	forms := []string{pw, `p%40ss%2Fw%3Ard%25%22`, `p%40ss%2fw%3ard%25%22`, `p@ss%2Fw:rd%25%22`, `p@ss/w:rd%\"`}
	for _, ep := range []string{
		"postgres://kine:p%40ss%2Fw%3Ard%25%22@db:5432/kine?sslmode=disable",
		"postgres://kine:p%40ss%2fw%3ard%25%22@db/kine",
		"postgres://db/kine?user=kine&%70assword=p%40ss%2Fw%3Ard%25%22",
		`mysql://kine:p@ss/w:rd%"@tcp(db:3306)/kine`,
	} {
		d, err := ParseDatastore(ep)
		if err != nil {
			t.Fatalf("%s: %v", ep, err)
		}
		if d.Password != pw {
			t.Fatalf("%s: password %q, want %q", ep, d.Password, pw)
		}
		text := "kine: " + strings.Join(forms, " | ") + " | " + ep + " | " + strconv.Quote(ep) + " | " + (&url.URL{Scheme: "postgres", User: url.UserPassword("kine", pw), Host: "db"}).String()
		got := d.Redact(text)
		for _, f := range forms {
			if strings.Contains(got, f) {
				t.Errorf("%s: Redact leaves %q in %q", ep, f, got)
			}
		}
		if !strings.HasPrefix(got, "kine: <redacted> | ") {
			t.Errorf("%s: Redact = %q", ep, got)
		}
		for _, f := range forms {
			if strings.Contains(d.Redacted(), f) {
				t.Errorf("%s: Redacted() = %q, shows %q", ep, d.Redacted(), f)
			}
		}
	}
}
