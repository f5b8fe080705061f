package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedCorpus adds every test document to f.
func seedCorpus(f *testing.F) {
	docs, _ := filepath.Glob("testdata/load/*.yaml")
	for _, d := range docs {
		if b, err := os.ReadFile(d); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("kubernetes:\n  <<: &b {role: agent, token: t}\n  vip: 10.0.0.100\n"))
	f.Add([]byte("network:\n  version: 2\n  ethernets: {a: {}}\n  bonds: {b: {interfaces: [a], parameters: {mode: 802.3ad}}}\n"))
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
		if strings.Contains(again.Kubernetes.DatastoreEndpoint, "@") && !strings.Contains(again.Kubernetes.DatastoreEndpoint, redactedText) {
			if ds, err := ParseDatastore(cfg.Kubernetes.DatastoreEndpoint); err == nil && ds.Password != "" {
				t.Fatalf("printed config holds the datastore password: %q", again.Kubernetes.DatastoreEndpoint)
			}
		}
	})
}
