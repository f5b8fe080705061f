package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// regDoc is a kubernetes.registries section under a minimal config; its
// line 4 is the first line of body (indented as the registries' keys).
func regDoc(body string) string {
	return "kubernetes:\n  registries:\n    # mirrors and configs\n" + body
}

// TestRegistriesCheck: each rule of kubernetes.registries, private-registry
// and disable-default-registry-endpoint, as the lines a user sees.
func TestRegistriesCheck(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the printed diagnostics, in order
		ok   bool     // no errors expected
	}{
		{"mirror with fallback, auth and a CA", regDoc(`    mirrors:
      docker.io:
        endpoint: ["https://mirror.example.com:5000", "https://harbor.example.com/v2/proxy"]
    configs:
      mirror.example.com:5000:
        auth: {username: puller, password: s3cret}
        tls: {ca_file: /etc/cairn/ca.pem, cert_file: /etc/cairn/c.pem, key_file: /etc/cairn/k.pem}
      harbor.example.com:
        auth: {auth: "cm9ib3Q6czNjcmV0"}
`), nil, true},
		{"wildcard", regDoc("    mirrors:\n      \"*\": {endpoint: [\"https://cache.example.com\"]}\n    configs:\n      \"*\": {tls: {ca_file: /etc/ca.pem}}\n"), nil, true},
		{"endpoint without a scheme", regDoc("    mirrors:\n      docker.io: {endpoint: [mirror.local:5000]}\n"),
			[]string{`c:5:30: error: kubernetes.registries.mirrors.docker.io.endpoint[0] "mirror.local:5000" is not a URL; write it with its scheme, like https://mirror.local:5000`}, false},
		{"endpoint of another scheme", regDoc("    mirrors:\n      docker.io: {endpoint: [\"ftp://m\"]}\n"),
			[]string{`c:5:30: error: kubernetes.registries.mirrors.docker.io.endpoint[0] "ftp://m" uses ftp://; containerd reaches mirrors over http:// or https:// only`}, false},
		{"endpoint with a password", regDoc("    mirrors:\n      docker.io: {endpoint: [\"https://u:hunter2@m\"]}\n"),
			[]string{`c:5:30: error: kubernetes.registries.mirrors.docker.io.endpoint[0] "https://<redacted>@m" carries a user name or password; put them under configs.m.auth`}, false},
		{"endpoint with a password and a space", regDoc("    mirrors:\n      docker.io: {endpoint: [\"https://u:hunter2@m/a b\", \"u:hunter2@m\"]}\n"),
			[]string{`endpoint[0] "https://<redacted>@m/a b" has a character a URL cannot hold`, `endpoint[1] "<redacted>@m" is not a URL`}, false},
		{"endpoint with a query", regDoc("    mirrors:\n      docker.io: {endpoint: [\"https://m/?ns=x\"]}\n"),
			[]string{`endpoint[0] "https://m/?ns=x" has a query or a fragment; a mirror is scheme://host[:port][/path]`}, false},
		{"endpoint with a space", regDoc("    mirrors:\n      docker.io: {endpoint: [\"https://m/a b\"]}\n"),
			[]string{`endpoint[0] "https://m/a b" has a character a URL cannot hold`}, false},
		{"endpoint as a string", regDoc("    mirrors:\n      docker.io: {endpoint: \"https://m\"}\n"),
			[]string{`c:5:29: error: kubernetes.registries.mirrors.docker.io.endpoint must be a list of strings, not a string (write [https://m])`}, false},
		{"endpoint listed twice", regDoc("    mirrors:\n      docker.io: {endpoint: [\"https://m\", \"https://M/\"]}\n"),
			[]string{`c:5:43: warning: kubernetes.registries.mirrors.docker.io.endpoint[1] https://m is also endpoint[0]; containerd tries it once`}, true},
		{"mirror without endpoints", regDoc("    mirrors:\n      docker.io: {}\n"),
			[]string{`c:5:7: warning: kubernetes.registries.mirrors.docker.io has no endpoint, so it changes nothing`}, true},
		{"mirror named by a URL", regDoc("    mirrors:\n      \"https://quay.io\": {endpoint: [\"https://m\"]}\n"),
			[]string{`c:5:7: error: kubernetes.registries.mirrors.https://quay.io: "https://quay.io" is a URL; write the registry alone, like quay.io`}, false},
		{"mirror that is no host", regDoc("    mirrors:\n      \"a b\": {endpoint: [\"https://m\"]}\n"),
			[]string{`c:5:7: error: kubernetes.registries.mirrors.a b: "a b" is not a registry`, `write a registry as image names spell it`}, false},
		{"unknown key in a mirror", regDoc("    mirrors:\n      docker.io: {endpoints: [\"https://m\"]}\n"),
			[]string{`c:5:19: error: unknown key "endpoints" in kubernetes.registries.mirrors.docker.io; did you mean "endpoint"?`}, false},
		{"rewrite with cairn's containerd", regDoc("    mirrors:\n      docker.io:\n        endpoint: [\"https://m\"]\n        rewrite: {\"^rancher/(.*)\": \"mirror/$1\"}\n"),
			[]string{`c:7:9: error: kubernetes.registries.mirrors.docker.io.rewrite: containerd v2.3.7 cannot rewrite repository names (k3s applies rewrites in its own containerd); remove rewrite and mirror the images under their own names, or set kubernetes.distribution: k3s`}, false},
		{"rewrite with k3s", "kubernetes:\n  distribution: k3s\n  registries:\n    mirrors:\n      docker.io:\n        endpoint: [\"https://m\"]\n        rewrite: {\"^rancher/(.*)\": \"mirror/$1\"}\n", nil, true},
		{"rewrite that is no regular expression", "kubernetes:\n  distribution: k3s\n  registries:\n    mirrors:\n      docker.io:\n        endpoint: [\"https://m\"]\n        rewrite: {\"^(a\": b}\n",
			[]string{`c:7:26: error: kubernetes.registries.mirrors.docker.io.rewrite: "^(a" is not a regular expression (Go's syntax, as k3s reads it): error parsing regexp: missing closing )`}, false},
		{"configs named by a URL", regDoc("    configs:\n      \"https://m\": {tls: {insecure_skip_verify: true}}\n"),
			[]string{`c:5:7: error: kubernetes.registries.configs.https://m: "https://m" is a URL; write the host alone, like m`}, false},
		{"empty auth", regDoc("    configs:\n      m: {auth: {}}\n"),
			[]string{`c:5:11: error: kubernetes.registries.configs.m.auth is empty; give username and password, or auth (the base64 of username:password)`}, false},
		{"username without password", regDoc("    configs:\n      m: {auth: {username: u}}\n"),
			[]string{`c:5:28: error: kubernetes.registries.configs.m.auth has a username but no password; give both`}, false},
		{"password without username", regDoc("    configs:\n      m: {auth: {password: hunter2}}\n"),
			[]string{`c:5:28: error: kubernetes.registries.configs.m.auth has a password but no username; give both`}, false},
		{"auth and a password", regDoc("    configs:\n      m: {auth: {auth: dTpw, username: u, password: hunter2}}\n"),
			[]string{`c:5:24: error: kubernetes.registries.configs.m.auth has auth and username or password too; keep one`}, false},
		{"auth that is not base64 of user:password", regDoc("    configs:\n      m: {auth: {auth: aHVudGVyMg==}}\n"),
			[]string{`c:5:24: error: kubernetes.registries.configs.m.auth.auth is not the base64 of username:password (the value is a secret and is not shown)`}, false},
		{"username with a colon", regDoc("    configs:\n      m: {auth: {username: \"a:b\", password: hunter2}}\n"),
			[]string{`kubernetes.registries.configs.m.auth.username "a:b" contains a colon`}, false},
		{"identity token with cairn's containerd", regDoc("    configs:\n      m: {auth: {identitytoken: hunter2}}\n"),
			[]string{`c:5:33: error: kubernetes.registries.configs.m.auth.identitytoken: cairn gives containerd v2.3.7 a host's credentials as a header of its hosts.toml, which cannot carry an identity token`}, false},
		{"identity token with k3s", "kubernetes:\n  distribution: k3s\n  registries:\n    configs:\n      m: {auth: {identitytoken: hunter2}}\n", nil, true},
		{"identity token and a password", "kubernetes:\n  distribution: k3s\n  registries:\n    configs:\n      m: {auth: {identitytoken: t, username: u, password: p}}\n",
			[]string{`c:5:33: error: kubernetes.registries.configs.m.auth has identitytoken and username, password or auth too; keep one way to log in`}, false},
		{"relative TLS file", regDoc("    configs:\n      m: {tls: {ca_file: ca.pem}}\n"),
			[]string{`c:5:26: error: kubernetes.registries.configs.m.tls.ca_file "ca.pem" is relative; give an absolute path (write the file with write_files)`}, false},
		{"unclean TLS file", regDoc("    configs:\n      m: {tls: {ca_file: /etc/../ca.pem}}\n"),
			[]string{`kubernetes.registries.configs.m.tls.ca_file "/etc/../ca.pem" is not a clean file path; write it as /ca.pem`}, false},
		{"client certificate without key", regDoc("    configs:\n      m: {tls: {cert_file: /c.pem}}\n"),
			[]string{`c:5:28: error: kubernetes.registries.configs.m.tls.cert_file is set without key_file; a client certificate needs both`}, false},
		{"CA and no verification", regDoc("    configs:\n      m: {tls: {ca_file: /ca.pem, insecure_skip_verify: true}}\n"),
			[]string{`c:5:26: warning: kubernetes.registries.configs.m.tls.ca_file is not used: insecure_skip_verify turns certificate verification off`}, true},
		{"credentials over plain http", regDoc("    mirrors:\n      docker.io: {endpoint: [\"http://m:5000\"]}\n    configs:\n      m:5000: {auth: {username: u, password: hunter2}}\n"),
			[]string{`c:5:30: warning: kubernetes.registries.mirrors.docker.io.endpoint[0] http://m:5000 is plain http, and configs gives m:5000 credentials: they cross the network unencrypted; use https://`}, true},
		{"registries at the top level", "registries: {}\n",
			[]string{`c:1:1: error: registries is a key of the kubernetes section; move it under kubernetes:`}, false},
		{"registries and private-registry", "kubernetes:\n  registries: {}\n  private-registry: /etc/r.yaml\n",
			[]string{`c:3:21: error: kubernetes.registries and kubernetes.private-registry are both set; keep one`}, false},
		{"relative private-registry", "kubernetes:\n  private-registry: etc/r.yaml\n",
			[]string{`c:2:21: error: kubernetes.private-registry "etc/r.yaml" is relative; give the absolute path of the file (write it with write_files)`}, false},
		{"private-registry from the image", "kubernetes:\n  private-registry: /etc/cairn/registries.yaml\n", nil, true},
		{"disable-default-registry-endpoint without mirrors", "kubernetes:\n  disable-default-registry-endpoint: true\n",
			[]string{`c:2:38: warning: kubernetes.disable-default-registry-endpoint: no registry has mirrors (neither registries nor private-registry is set), so every image comes from its own registry; it is ignored`}, true},
		{"disable-default-registry-endpoint", "kubernetes:\n  disable-default-registry-endpoint: true\n  registries: {mirrors: {docker.io: {endpoint: [\"https://m\"]}}}\n", nil, true},
		{"write_files writes k3s's file and registries is set", "write_files:\n  - {path: /etc/rancher/k3s/registries.yaml, content: \"{}\"}\nkubernetes:\n  registries: {}\n",
			[]string{`c:2:12: error: write_files[0] writes /etc/rancher/k3s/registries.yaml, the registries file k3s reads, and kubernetes.registries is set too; keep one (private-registry: /etc/rancher/k3s/registries.yaml reads the file)`}, false},
		// The file write_files writes is checked, located in that file.
		{"private-registry written by write_files", `write_files:
  - path: /etc/cairn/registries.yaml
    permissions: "0600"
    content: |
      mirrors:
        docker.io:
          endpoint: [mirror:5000]
      configs:
        mirror:5000:
          auth: {username: u, pasword: hunter2}
kubernetes:
  private-registry: /etc/cairn/registries.yaml
`, []string{
			`/etc/cairn/registries.yaml:3:16: error: mirrors.docker.io.endpoint[0] "mirror:5000" is not a URL; write it with its scheme, like https://mirror:5000`,
			`/etc/cairn/registries.yaml:6:25: error: unknown key "pasword" in configs.mirror:5000.auth; did you mean "password"?`}, false},
		{"k3s's registries file is read by default", `write_files:
  - path: /etc/rancher/k3s/registries.yaml
    content: |
      mirrors:
        docker.io:
          endpoint: ["https://mirror:5000"]
          rewrite: {"(.*)": "x/$1"}
`, []string{`/etc/rancher/k3s/registries.yaml:4:5: error: mirrors.docker.io.rewrite: containerd v2.3.7 cannot rewrite repository names`}, false},
		{"registries file readable by all, with credentials", `write_files:
  - path: /etc/rancher/k3s/registries.yaml
    content: |
      configs:
        mirror:5000:
          auth: {username: u, password: hunter2}
`, []string{`c:2:5: warning: write_files[0] writes the registries file /etc/rancher/k3s/registries.yaml, which holds credentials, readable by every user (mode 0644); give it permissions: "0600"`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Load(src("c", tt.doc))
			got := messages(diags)
			if tt.ok == diags.HasErrors() || tt.ok != (cfg != nil) {
				t.Errorf("HasErrors() = %v, want %v; diagnostics:\n%s", diags.HasErrors(), !tt.ok, got)
			}
			wantInOrder(t, got, tt.want)
			if tt.want == nil && len(diags) > 0 {
				t.Errorf("unexpected diagnostics:\n%s", got)
			}
			if strings.Contains(got, "hunter2") || strings.Contains(got, "s3cret") {
				t.Errorf("a diagnostic shows a secret:\n%s", got)
			}
		})
	}
}

// TestRegistriesDecode: the registries.yaml shape decodes into the schema.
func TestRegistriesDecode(t *testing.T) {
	cfg, diags := Load(src("c", regDoc(`    mirrors:
      docker.io:
        endpoint: ["https://a.example.com", "http://b.example.com:5000/v2/proxy"]
      "*":
        endpoint: ["https://cache.example.com"]
    configs:
      a.example.com:
        auth: {username: u, password: p}
        tls: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem, insecure_skip_verify: yes}
`)))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	want := &Registries{
		Mirrors: map[string]RegistryMirror{
			"docker.io": {Endpoints: []string{"https://a.example.com", "http://b.example.com:5000/v2/proxy"}},
			"*":         {Endpoints: []string{"https://cache.example.com"}},
		},
		Configs: map[string]RegistryConfig{"a.example.com": {
			Auth: &RegistryAuth{Username: "u", Password: "p"},
			TLS:  &RegistryTLS{CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem", InsecureSkipVerify: true},
		}},
	}
	if !reflect.DeepEqual(cfg.Kubernetes.Registries, want) {
		t.Errorf("decoded %+v\nwant %+v", cfg.Kubernetes.Registries, want)
	}
	// A later source replaces registries as a whole.
	cfg, diags = Load(src("a", regDoc("    mirrors: {docker.io: {endpoint: [\"https://a\"]}}\n")), src("b", regDoc("    mirrors: {quay.io: {endpoint: [\"https://q\"]}}\n")))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	if m := cfg.Kubernetes.Registries.Mirrors; len(m) != 1 || m["quay.io"].Endpoints[0] != "https://q" {
		t.Errorf("merged mirrors = %+v, want b's alone", m)
	}
}

// TestRegistryConfig reads private-registry at boot: bounded, strict, with
// every problem located in the file, and no secret in the error.
func TestRegistryConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "mirrors:\n  docker.io:\n    endpoint: [\"https://m.example.com\"]\nconfigs:\n  m.example.com:\n    auth: {username: u, password: hunter2}\n")
	bad := write("bad.yaml", "mirrors:\n  docker.io:\n    endpoint: [\"https://m.example.com\"]\n    bogus: 1\nconfigs:\n  m.example.com:\n    auth: {auth: aHVudGVyMg==}\n")
	notYAML := write("not.yaml", "mirrors: [\n")
	gz := write("tab.yaml", "mirrors:\n\tdocker.io: {}\n")
	large := write("large.yaml", "#"+strings.Repeat("x", MaxRegistriesSize)+"\n")
	rewrite := write("rewrite.yaml", "mirrors:\n  docker.io:\n    endpoint: [\"https://m\"]\n    rewrite: {\"(.*)\": \"x/$1\"}\n")

	inline := &Registries{Mirrors: map[string]RegistryMirror{"docker.io": {Endpoints: []string{"https://m"}}}}
	if r, err := (&Kubernetes{Registries: inline, PrivateRegistry: good}).RegistryConfig(); r != inline || err != nil {
		t.Errorf("registries set: got %v, %v; want them as they are", r, err)
	}
	if r, err := (&Kubernetes{}).RegistryConfig(); r != nil || err != nil {
		t.Errorf("neither set: got %v, %v", r, err)
	}
	r, err := (&Kubernetes{PrivateRegistry: good}).RegistryConfig()
	if err != nil || r.Configs["m.example.com"].Auth.Password != "hunter2" || r.Mirrors["docker.io"].Endpoints[0] != "https://m.example.com" {
		t.Errorf("good file: %+v, %v", r, err)
	}
	if _, err := (&Kubernetes{PrivateRegistry: rewrite, Distribution: "k3s"}).RegistryConfig(); err != nil {
		t.Errorf("a rewrite with distribution k3s: %v", err)
	}
	for _, tt := range []struct {
		path string
		want []string
	}{
		{bad, []string{"kubernetes.private-registry " + bad + " is not a valid registries file; fix it (k3s's registries.yaml format):\n",
			bad + `:4:5: error: unknown key "bogus" in mirrors.docker.io; known keys: endpoint, rewrite` + "\n",
			bad + `:7:18: error: configs.m.example.com.auth.auth is not the base64 of username:password`}},
		{notYAML, []string{notYAML + ":1:1: error: not valid YAML: did not find expected node content"}},
		{gz, []string{gz + ":2:1: error: this line is indented with a tab"}},
		{large, []string{"kubernetes.private-registry: " + large + " is larger than 1048576 bytes; write the file with write_files, or drop private-registry"}},
		{rewrite, []string{rewrite + ":4:5: error: mirrors.docker.io.rewrite: containerd v2.3.7 cannot rewrite repository names"}},
		{filepath.Join(dir, "missing.yaml"), []string{"kubernetes.private-registry: open " + dir + "/missing.yaml: no such file or directory"}},
	} {
		_, err := (&Kubernetes{PrivateRegistry: tt.path}).RegistryConfig()
		if err == nil {
			t.Errorf("%s: no error", tt.path)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", filepath.Base(tt.path), w, err)
			}
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "aHVudGVyMg") {
			t.Errorf("%s: the error shows a secret:\n%v", tt.path, err)
		}
	}
}

// TestRegistriesRedacted: cairn validate --print and the console show no
// registry password, auth or identity token, nor the content of the
// registries file write_files writes; the printed config loads again.
func TestRegistriesRedacted(t *testing.T) {
	cfg, diags := Load(src("c", `write_files:
  - path: /etc/rancher/k3s/registries.yaml
    permissions: "0600"
    content: |
      configs:
        m.example.com:
          auth: {username: u, password: hunter-file}
kubernetes:
  distribution: k3s
  private-registry: /etc/rancher/k3s/registries.yaml
`))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	inline, diags := Load(src("c", `kubernetes:
  distribution: k3s
  registries:
    mirrors:
      docker.io: {endpoint: ["https://a.example.com"]}
    configs:
      a.example.com: {auth: {username: puller, password: hunter-password}}
      b.example.com: {auth: {auth: "dTpodW50ZXItYXV0aA=="}}
      c.example.com: {auth: {identitytoken: hunter-token}}
`))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	for _, c := range []*Config{cfg, inline} {
		b, err := c.Redacted().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out := string(b)
		for _, s := range []string{"hunter", "dTpodW50ZXItYXV0aA=="} {
			if strings.Contains(out, s) {
				t.Errorf("printed config contains secret %q:\n%s", s, out)
			}
		}
		again, diags := Load(src("printed", out))
		if diags.HasErrors() {
			t.Errorf("printed config does not load again:\n%s\n%s", out, messages(diags))
			continue
		}
		if r := again.Kubernetes.Registries; r != nil && (r.Configs["a.example.com"].Auth.Username != "puller" || r.Configs["a.example.com"].Auth.Password != redactedText) {
			t.Errorf("redaction removed too much or too little: %+v", r.Configs["a.example.com"].Auth)
		}
	}
	// The original is untouched.
	if inline.Kubernetes.Registries.Configs["a.example.com"].Auth.Password != "hunter-password" {
		t.Errorf("Redacted changed the original")
	}
}
