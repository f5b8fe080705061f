package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestDocExamples loads every complete cloud-config in docs/config.md (the
// ```yaml blocks that start with #cloud-config): the documentation's
// examples must be valid and free of warnings.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	n := 0
	for i, b := range blocks {
		if !strings.HasPrefix(b[1], "#cloud-config") {
			// A fragment: it must be valid on its own too.
			if _, diags := Load(Source{Name: "fragment", Data: []byte(b[1])}); len(diags) > 0 {
				t.Errorf("fragment %d:\n%s\n%s", i, b[1], messages(diags))
			}
			continue
		}
		n++
		cfg, diags := Load(Source{Name: "docs/config.md example", Data: []byte(b[1])})
		if len(diags) > 0 {
			t.Errorf("example %d:\n%s\n%s", i, b[1], messages(diags))
			continue
		}
		if cfg.Kubernetes.Role == "agent" && cfg.Kubernetes.Server != "https://192.168.1.100:6443" {
			t.Errorf("example %d: agent server = %q", i, cfg.Kubernetes.Server)
		}
	}
	if n < 4 {
		t.Errorf("found %d complete examples, want the intro and the HA trio", n)
	}
}

// TestDocsListK3sKeys: docs/config.md lists every k3s key cairn does not
// implement with its status, and every one it implements in the kubernetes
// table.
func TestDocsListK3sKeys(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "\n## k3s keys\n")
	section, _, _ = strings.Cut(section, "\n## ")
	for key, k := range k3sKeys {
		status := "warning"
		if k.sev == Error {
			status = "error"
		}
		row := regexp.MustCompile("(?m)^\\|[^\\n]*`" + regexp.QuoteMeta(key) + "`[^\\n]*\\| " + status + ": ")
		if !row.MatchString(section) {
			t.Errorf("docs/config.md's k3s keys table does not list %q as %s", key, status)
		}
	}
	for key := range fieldsOf(reflect.TypeOf(Kubernetes{})) {
		if !strings.Contains(string(doc), "| `"+key+"` |") {
			t.Errorf("docs/config.md's kubernetes table does not list %q", key)
		}
	}
}
