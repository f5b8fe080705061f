package config

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// seedCorpus adds every test document to f.
func seedCorpus(f *testing.F) {
	docs, _ := filepath.Glob("testdata/load/*.yaml")
	for _, d := range docs {
		if b, err := os.ReadFile(d); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("kubernetes:\n  <<: &b {role: agent, token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J}\n  vip: 10.0.0.100\n"))
	f.Add([]byte("network:\n  version: 2\n  ethernets: {a: {}}\n  bonds: {b: {interfaces: [a], parameters: {mode: 802.3ad}}}\n"))
	f.Add([]byte("write_files: [{path: /etc/rancher/k3s/registries.yaml, content: \"configs: {m: {auth: {username: u, password: pw12}}}\"}]\n"))
	f.Add([]byte("kubernetes:\n  manifests:\n    - name: a\n      content: |\n        {apiVersion: v1, kind: Secret, metadata: {name: s}}\n        ---\n        kind: List\n"))
}

// FuzzParse checks that Parse never panics, that it returns a config
// exactly when there is no error, and that every diagnostic is located.
func FuzzParse(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, diags := Parse(Source{Name: "fuzz", Data: data})
		if (cfg == nil) != diags.HasErrors() {
			t.Fatalf("cfg nil = %v, HasErrors = %v", cfg == nil, diags.HasErrors())
		}
		for _, d := range diags {
			if strings.Contains(d.Message, internalError) {
				t.Fatalf("Parse panicked: %s", d)
			}
			if d.File != "fuzz" || d.Line < 1 || d.Column < 1 || d.Message == "" {
				t.Fatalf("diagnostic without a location or message: %#v", d)
			}
		}
		nw, diags := ParseNetwork(Source{Name: "fuzz", Data: data})
		if (nw == nil) != diags.HasErrors() {
			t.Fatalf("ParseNetwork: nw nil = %v, HasErrors = %v", nw == nil, diags.HasErrors())
		}
	})
}

// FuzzLoad runs the whole path (merge, defaults, validation, redaction,
// printing) and checks that a printed config loads again and that the
// token never survives redaction.
func FuzzLoad(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, diags := Load(Source{Name: "base", Data: []byte("kubernetes:\n  role: server\n")}, Source{Name: "fuzz", Data: data})
		if strings.Contains(messages(diags), internalError) {
			t.Fatalf("Load panicked:\n%s", messages(diags))
		}
		if (cfg == nil) != diags.HasErrors() {
			t.Fatalf("cfg nil = %v, HasErrors = %v", cfg == nil, diags.HasErrors())
		}
		if cfg == nil {
			return
		}
		out, err := cfg.Redacted().Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, diags := Load(Source{Name: "printed", Data: out})
		if diags.HasErrors() {
			t.Fatalf("printed config does not load again:\n%s\n%s", out, messages(diags))
		}
		if cfg.Kubernetes.Token != "" && again.Kubernetes.Token != redactedText {
			t.Fatalf("printed config holds token %q", again.Kubernetes.Token)
		}
		for _, secret := range cfg.Kubernetes.Registries.Secrets() {
			if len(secret) >= 4 && bytes.Count(data, []byte(secret)) == 1 && bytes.Contains(out, []byte(secret)) {
				t.Fatalf("printed config holds the registry secret %q:\n%s", secret, out)
			}
		}
		if strings.Contains(again.Kubernetes.DatastoreEndpoint, "@") && !strings.Contains(again.Kubernetes.DatastoreEndpoint, redactedText) {
			if ds, err := ParseDatastore(cfg.Kubernetes.DatastoreEndpoint); err == nil && ds.Password != "" {
				t.Fatalf("printed config holds the datastore password: %q", again.Kubernetes.DatastoreEndpoint)
			}
		}
	})
}

// FuzzDatastore checks that no parsed password survives redaction and that
// errors never quote one.
func FuzzDatastore(f *testing.F) {
	for _, ep := range []string{
		"postgres://k3s:s3cret@192.168.1.5:5432/k3s?sslmode=verify-full",
		"postgres://db/k3s?user=k3s&password=hunter2",
		"mysql://k3s:p@ss@tcp(db:3306)/k3s?tls=true",
		"https://10.0.0.5:2379,https://10.0.0.6:2379",
		"sqlite:///var/lib/cairn/state.db",
		"k3s:secret@db",
	} {
		f.Add(ep)
	}
	f.Fuzz(func(t *testing.T, ep string) {
		d, err := ParseDatastore(ep)
		if err != nil {
			// The error must not contain what looks like the password.
			if _, rest, ok := strings.Cut(ep, "://"); ok {
				if at := strings.LastIndex(rest, "@"); at > 0 {
					if _, pw, ok := strings.Cut(rest[:at], ":"); ok && len(pw) >= 4 && strings.Count(ep, pw) == 1 && strings.Contains(err.Error(), pw) {
						t.Fatalf("error quotes the password %q: %v", pw, err)
					}
				}
			}
			return
		}
		if pw := d.Password; len(pw) >= 4 && strings.Count(ep, pw) == 1 && strings.Contains(d.Redacted(), pw) {
			t.Fatalf("Redacted() = %q keeps password %q", d.Redacted(), pw)
		}
	})
}

// FuzzRegistries checks the private-registry reader: it never panics, it
// returns registries exactly when there is no error, every diagnostic
// names the file, and no message quotes a password, auth or identity
// token.
func FuzzRegistries(f *testing.F) {
	for _, doc := range []string{
		"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example.com:5000\", \"http://10.0.0.5/v2/x\"]\n    rewrite: {\"^a/(.*)\": \"b/$1\"}\n",
		"mirrors: {\"*\": {endpoint: [\"https://cache\"]}}\nconfigs: {\"*\": {tls: {ca_file: /ca.pem, insecure_skip_verify: true}}}\n",
		"configs:\n  m:5000:\n    auth: {username: u, password: hunter2}\n    tls: {cert_file: /c.pem, key_file: /k.pem}\n",
		"configs: {m: {auth: {auth: aHVudGVyMg==}}, n: {auth: {identitytoken: tok3n}}}\n",
		"mirrors: {docker.io: {endpoint: [\"https://u:hunter2@m/a b\", \"ftp://u:hunter3@m\"]}}\n",
	} {
		f.Add([]byte(doc), true)
		f.Add([]byte(doc), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, builtin bool) {
		r, diags := parseRegistries("fuzz", data, builtin)
		if (r == nil) != diags.HasErrors() {
			t.Fatalf("r nil = %v, HasErrors = %v", r == nil, diags.HasErrors())
		}
		var loose Registries
		_ = yaml.Unmarshal(data, &loose)
		secrets := loose.Secrets()
		for _, m := range loose.Mirrors {
			for _, e := range m.Endpoints {
				if u, err := url.Parse(e); err == nil && u.User != nil {
					pw, _ := u.User.Password()
					secrets = append(secrets, pw)
				}
			}
		}
		for _, d := range diags {
			if strings.Contains(d.Message, internalError) {
				t.Fatalf("parseRegistries panicked: %s", d)
			}
			if d.File != "fuzz" || d.Message == "" {
				t.Fatalf("diagnostic without its file or a message: %#v", d)
			}
			for _, s := range secrets {
				if len(s) >= 4 && bytes.Count(data, []byte(s)) == 1 && strings.Contains(d.Message, s) {
					t.Fatalf("a message quotes the secret %q: %s", s, d)
				}
			}
		}
	})
}

// FuzzParseManifest checks that ParseManifest never panics, that objects
// come back only when there is no problem, each whole, and that every
// problem is located in the text.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(deployment + "---\n{apiVersion: v1, kind: List, items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: a}}]}\n"))
	f.Add([]byte("a: &a [*a, *a]\n---\nkind: [\n"))
	f.Add([]byte(`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "y"}, "data": {"1": 2.5}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, problems := ParseManifest(data)
		if (objs != nil) && (problems != nil) {
			t.Fatalf("objects and problems both: %v", problems)
		}
		for _, o := range objs {
			if o.APIVersion() == "" || o.Kind() == "" || o.Name() == "" || o.Line < 1 {
				t.Fatalf("an object that is not whole: %#v", o)
			}
		}
		n := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) + 2
		for _, p := range problems {
			if strings.Contains(p.Msg, internalManifestError) {
				t.Fatalf("ParseManifest panicked: %s", p)
			}
			if p.Line < 0 || p.Line > n || p.Msg == "" {
				t.Fatalf("a problem out of the text (%d lines): %#v", n, p)
			}
		}
	})
}
