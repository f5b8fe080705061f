package render

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairn-os/cairn/config"
)

// The registry secrets of the cases below; none may reach an argument,
// and a file holding one (or the header made of it) must be 0600.
const (
	registryPassword = "s3cret-registry-pw"
	registryAuth     = "cm9ib3Q6aHVudGVyMi1oYXJib3I=" // robot:hunter2-harbor
)

var registryCases = []struct {
	name string
	doc  string
}{
	// docker.io from three mirrors in order, then Docker Hub itself; a
	// private registry with credentials and its own CA, no mirror.
	{"registries-mirror-fallback", `kubernetes:
  registries:
    mirrors:
      docker.io:
        endpoint:
          - https://mirror.example.com
          - http://10.0.0.5:5000/v2/
          - https://harbor.example.com/v2/dockerhub-proxy
    configs:
      mirror.example.com:
        auth: {username: puller, password: ` + registryPassword + `}
        tls: {ca_file: /etc/cairn/registry-ca.pem}
      harbor.example.com:
        auth: {auth: ` + registryAuth + `}
      registry.example.com:5000:
        auth: {username: ci, password: ` + registryPassword + `}
        tls:
          ca_file: /etc/cairn/registry-ca.pem
          cert_file: /etc/cairn/registry-client.pem
          key_file: /etc/cairn/registry-client-key.pem
`},
	// "*" for every registry without an entry; quay.io has its own; the
	// wildcard's TLS settings reach every host without an entry.
	{"registries-wildcard", `kubernetes:
  registries:
    mirrors:
      "*":
        endpoint: [https://cache.example.com]
      quay.io:
        endpoint: [https://quay-cache.example.com]
    configs:
      "*":
        tls: {ca_file: /etc/cairn/registry-ca.pem}
      quay-cache.example.com:
        tls: {insecure_skip_verify: true}
`},
	// No fallback: the last mirror is the server; a registry whose
	// endpoint is itself over http; a registry with no mirror keeps its
	// upstream.
	{"registries-no-default", `kubernetes:
  disable-default-registry-endpoint: true
  registries:
    mirrors:
      docker.io:
        endpoint: [https://a.example.com, https://b.example.com]
      "*":
        endpoint: [https://cache.example.com]
      registry.local:5000:
        endpoint: [http://registry.local:5000]
      localhost:5000:
        endpoint: [https://mirror.example.com]
    configs:
      b.example.com:
        auth: {username: puller, password: ` + registryPassword + `}
        tls: {ca_file: /etc/cairn/b-ca.pem}
      ghcr.io:
        auth: {username: bot, password: ` + registryPassword + `}
`},
}

// TestContainerdRegistries renders containerd for each registries config
// and compares its config.toml and hosts.toml files with the golden file.
func TestContainerdRegistries(t *testing.T) {
	for _, tt := range registryCases {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Containerd(load(t, tt.doc), testNode)
			if err != nil {
				t.Fatal(err)
			}
			checkRegistryFiles(t, c)
			var b bytes.Buffer
			show(&b, *c)
			golden(t, tt.name, b.Bytes())
		})
	}
}

// checkRegistryFiles: no secret in the arguments or the environment,
// every file holding one (or a header made of one) 0600, every hosts.toml
// under RegistryHostsDir.
func checkRegistryFiles(t *testing.T, c *Command) {
	t.Helper()
	secrets := []string{registryPassword, registryAuth, "Basic "}
	for _, a := range append(append([]string{}, c.Args...), c.Env...) {
		for _, s := range secrets {
			if strings.Contains(a, s) {
				t.Errorf("secret in an argument or the environment: %s", a)
			}
		}
	}
	for _, f := range c.Files {
		for _, s := range secrets {
			if bytes.Contains(f.Data, []byte(s)) && f.Mode != 0o600 {
				t.Errorf("%s holds a secret but has mode %04o", f.Path, f.Mode)
			}
		}
		if filepath.Base(f.Path) == "hosts.toml" && !strings.HasPrefix(f.Path, RegistryHostsDir+"/") {
			t.Errorf("%s is outside containerd's config_path %s", f.Path, RegistryHostsDir)
		}
	}
}

// TestContainerdPrivateRegistry: private-registry names a file read when
// containerd is rendered, with the cloud-config's diagnostics naming that
// file; a missing, invalid or oversized one is an error that shows no
// secret.
func TestContainerdPrivateRegistry(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `mirrors:
  docker.io:
    endpoint: ["https://mirror.example.com:5000"]
configs:
  mirror.example.com:5000:
    auth: {username: puller, password: `+registryPassword+`}
    tls: {ca_file: /etc/cairn/registry-ca.pem}
`)
	bad := write("bad.yaml", `mirrors:
  docker.io:
    endpoint: [mirror.example.com:5000]
configs:
  mirror.example.com:5000:
    auth: {username: puller, passwd: `+registryPassword+`}
`)
	large := write("large.yaml", "# "+strings.Repeat("x", config.MaxRegistriesSize)+"\n")

	c, err := Containerd(load(t, "kubernetes:\n  private-registry: "+good+"\n"), testNode)
	if err != nil {
		t.Fatal(err)
	}
	checkRegistryFiles(t, c)
	var b bytes.Buffer
	show(&b, *c)
	golden(t, "registries-private-registry", b.Bytes())

	for _, tt := range []struct {
		path string
		want []string
	}{
		{filepath.Join(dir, "missing.yaml"), []string{"rendering containerd: kubernetes.private-registry: open " + dir + "/missing.yaml: no such file or directory; write the file with write_files"}},
		{bad, []string{
			bad + ":3:16: error: mirrors.docker.io.endpoint[0] \"mirror.example.com:5000\" is not a URL; write it with its scheme, like https://mirror.example.com:5000",
			bad + `:6:30: error: unknown key "passwd" in configs.mirror.example.com:5000.auth; did you mean "password"?`}},
		{large, []string{"is larger than 1048576 bytes"}},
	} {
		_, err := Containerd(load(t, "kubernetes:\n  private-registry: "+tt.path+"\n"), testNode)
		if err == nil {
			t.Errorf("%s: no error", tt.path)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", tt.path, w, err)
			}
		}
		if strings.Contains(err.Error(), registryPassword) {
			t.Errorf("%s: the error shows the password:\n%v", tt.path, err)
		}
	}
}

// TestRegistryHostsRefusesIdentityToken: config validation refuses an
// identity token for containerd; render refuses it too, for a config built
// in code.
func TestRegistryHostsRefusesIdentityToken(t *testing.T) {
	r := &config.Registries{Configs: map[string]config.RegistryConfig{
		"registry.example.com": {Auth: &config.RegistryAuth{IdentityToken: "refresh-token-value"}},
	}}
	_, err := RegistryHosts(r, false)
	if err == nil || !strings.Contains(err.Error(), "identity token") || strings.Contains(err.Error(), "refresh-token-value") {
		t.Errorf("err = %v", err)
	}
}

// TestK3sRegistries: with distribution k3s, kubernetes.registries becomes
// k3s's registries.yaml (0600), named by private-registry in config.yaml,
// which k3s knows; disable-default-registry-endpoint passes through on
// servers and agents.
func TestK3sRegistries(t *testing.T) {
	known := map[string]bool{}
	data, err := os.ReadFile("testdata/k3s-keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		known[strings.TrimSpace(l)] = true
	}
	for _, role := range []string{"server", "agent"} {
		cfg := load(t, `kubernetes:
  role: `+role+`
  token: `+token+`
  vip: 192.168.1.100
  distribution: k3s
  disable-default-registry-endpoint: true
  registries:
    mirrors:
      docker.io:
        endpoint: [https://mirror.example.com]
        rewrite: {"^rancher/(.*)": "mirrors/rancher/$1"}
    configs:
      mirror.example.com:
        auth: {identitytoken: `+registryPassword+`}
`)
		cmd, err := K3s(cfg, testNode)
		if err != nil {
			t.Fatal(err)
		}
		if len(cmd.Files) != 2 {
			t.Fatalf("%s: files %v, want config.yaml and registries.yaml", role, cmd.Files)
		}
		conf, regs := cmd.Files[0], cmd.Files[1]
		if regs.Path != "/etc/rancher/k3s/registries.yaml" || regs.Mode != 0o600 {
			t.Errorf("%s: %s mode %04o, want /etc/rancher/k3s/registries.yaml 0600", role, regs.Path, regs.Mode)
		}
		var back config.Registries
		if err := yaml.Unmarshal(regs.Data, &back); err != nil || back.Configs["mirror.example.com"].Auth.IdentityToken != registryPassword ||
			back.Mirrors["docker.io"].Rewrites["^rancher/(.*)"] != "mirrors/rancher/$1" {
			t.Errorf("%s: registries.yaml does not hold the config (%v):\n%s", role, err, regs.Data)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(conf.Data, &doc); err != nil {
			t.Fatal(err)
		}
		if doc["private-registry"] != regs.Path || doc["disable-default-registry-endpoint"] != true || doc["registries"] != nil {
			t.Errorf("%s: config.yaml:\n%s", role, conf.Data)
		}
		for key := range doc {
			if !known[role+" "+key] {
				t.Errorf("%s: k3s %s has no config key %q (testdata/k3s-keys.txt)", role, role, key)
			}
		}
	}
}

func TestTOMLString(t *testing.T) {
	for in, want := range map[string]string{
		`/etc/a b.pem`:  `"/etc/a b.pem"`,
		`C:\x "q"`:      `"C:\\x \"q\""`,
		"tab\tnl\n\x01": `"tab\tnl\n\u0001"`,
		"ü":             `"ü"`,
	} {
		if got := tomlString(in); got != want {
			t.Errorf("tomlString(%q) = %s, want %s", in, got, want)
		}
	}
}
