package main

import (
	"os"
	"strings"
	"testing"
)

const versionsEnv = "../../image/components/versions.env"

func TestComponentsEnvIsCurrent(t *testing.T) {
	want, err := os.ReadFile(versionsEnv)
	if err != nil {
		t.Fatal(err)
	}
	if componentsEnv != string(want) {
		t.Errorf("cmd/cairn/components.env differs from %s: run go generate ./cmd/cairn", versionsEnv)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runCairn(t, "", "version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "cairn ") {
		t.Fatalf("cairn version: exit status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// Every pin of versions.env, as NAME VALUE on its own line.
	shown := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(line, "  ") {
			shown[f[1]] = f[0]
		}
	}
	pins := 0
	for _, line := range strings.Split(componentsEnv, "\n") {
		key, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(key, "#") {
			continue
		}
		pins++
		if shown[value] == "" {
			t.Errorf("cairn version does not show %s (%s):\n%s", value, key, stdout)
		}
	}
	if pins == 0 || shown[strings.Split(strings.Split(componentsEnv, "KUBERNETES_VERSION=")[1], "\n")[0]] != "kubernetes" {
		t.Errorf("cairn version does not name the kubernetes version:\n%s", stdout)
	}
}

func TestVersionStamped(t *testing.T) {
	// make cairn stamps the word cairn build gives images (git describe).
	defer func(v string) { version = v }(version)
	version = "43261c4-dirty"
	var b strings.Builder
	printVersion(&b)
	if first, _, _ := strings.Cut(b.String(), "\n"); !strings.HasPrefix(first, "cairn 43261c4-dirty (go") {
		t.Errorf("cairn version with a stamped version: %q", first)
	}
}
