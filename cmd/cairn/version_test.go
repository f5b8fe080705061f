package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
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

func TestVersionFromBuild(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "7e5d475abcdef0123456789abcdef0123456789a"
	for _, tc := range []struct {
		name     string
		main     string
		settings []debug.BuildSetting
		want     string
	}{
		{"go build, untagged, clean", "v0.0.0-20261207022816-7e5d475abcde", vcs(rev, "false"), "7e5d475"},
		{"go build, untagged, changes", "v0.0.0-20261207022816-7e5d475abcde+dirty", vcs(rev, "true"), "7e5d475-dirty"},
		{"go build after a tag", "v0.1.1-0.20261207022816-7e5d475abcde", vcs(rev, "false"), "7e5d475"},
		{"go build on a tag", "v0.1.0", vcs(rev, "false"), "v0.1.0"},
		{"go build on a tag, changes", "v0.1.0+dirty", vcs(rev, "true"), "v0.1.0-dirty"},
		{"go install module@tag", "v0.2.0", nil, "v0.2.0"},
		{"-buildvcs=false", "(devel)", nil, "dev"},
		{"older go, vcs only", "(devel)", vcs(rev, "true"), "7e5d475-dirty"},
	} {
		info := &debug.BuildInfo{Main: debug.Module{Path: "cairn", Version: tc.main}, Settings: tc.settings}
		if got := versionFromBuild(info); got != tc.want {
			t.Errorf("%s: version %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := versionFromBuild(nil); got != "dev" {
		t.Errorf("no build info: version %q, want dev", got)
	}
}

// TestVersionMatchesBuild builds the CLI as a plain `go build` does (no
// -ldflags) and as `make cairn` does, and checks that both print the word
// `cairn build` gives an image of this tree (git describe).
func TestVersionMatchesBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI twice")
	}
	describe, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	want := strings.TrimSpace(string(describe))
	if strings.Contains(want, "-g") {
		t.Skipf("git describe %s: a tag behind the commit, which a plain go build cannot name", want)
	}
	// The go command counts untracked files as changes; git describe does not.
	untracked, _ := exec.Command("git", "ls-files", "--others", "--exclude-standard", "../..").Output()
	dir := t.TempDir()
	for _, tc := range []struct{ name, ldflags string }{
		{"go build", ""},
		{"make cairn", "-X main.version=" + want},
	} {
		bin := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		// -buildvcs=true: the go command's default, which a GOFLAGS of
		// this machine may turn off.
		build := exec.Command("go", "build", "-trimpath", "-buildvcs=true", "-ldflags", tc.ldflags, "-o", bin, ".")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, out)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("%s: cairn version: %v", tc.name, err)
		}
		first, _, _ := strings.Cut(string(out), "\n")
		got := strings.Fields(first)[1]
		if tc.ldflags == "" && len(untracked) > 0 && !strings.HasSuffix(want, "-dirty") {
			want := want + "-dirty"
			if got != want {
				t.Errorf("%s (untracked files): cairn version says %q, want %q", tc.name, first, want)
			}
			continue
		}
		if got != want {
			t.Errorf("%s: cairn version says %q, git describe (cairn build's version) %q", tc.name, first, want)
		}
	}
}
