package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// golden compares got with testdata file name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("reading golden file: %v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestLoadGolden loads every document in testdata/load and compares what a
// user sees (the diagnostics, then the normalized, redacted config) with
// the .golden file next to it.
func TestLoadGolden(t *testing.T) {
	docs, err := filepath.Glob("testdata/load/*.yaml")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no test documents: %v", err)
	}
	for _, doc := range docs {
		t.Run(filepath.Base(doc), func(t *testing.T) {
			data, err := os.ReadFile(doc)
			if err != nil {
				t.Fatal(err)
			}
			cfg, diags := Load(Source{Name: doc, Data: data})
			var out bytes.Buffer
			for _, d := range diags {
				out.WriteString(d.String() + "\n")
			}
			if (cfg == nil) != diags.HasErrors() {
				t.Errorf("cfg is nil: %v, but HasErrors: %v", cfg == nil, diags.HasErrors())
			}
			if cfg != nil {
				b, err := cfg.Redacted().Marshal()
				if err != nil {
					t.Fatal(err)
				}
				out.WriteString("--- normalized\n")
				out.Write(b)
				for _, secret := range []string{"a-long-shared-secret", "s3cret", "p%40ss", "t0k3n", "MHcCAQEEIexample"} {
					if strings.Contains(string(b), secret) {
						t.Errorf("printed config holds secret %q", secret)
					}
				}
			}
			golden(t, strings.TrimSuffix(doc, ".yaml")+".golden", out.Bytes())
		})
	}
}
