package componenttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// maxNodeBytes is issue #13's bound on cairn-node installed, per arch. The
// binary stays under it only while the linker can drop unused methods
// (internal/dceoverlay): one more dynamic reflect Method or MethodByName in
// a dependency adds about 23 MB on amd64. `make components-sizes` and
// docs/components.md ("What was cut") say where the bytes go.
const maxNodeBytes = 150_000_000

func TestNodeSize(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			fi, err := os.Stat(filepath.Join(tree(t, arch), "usr/bin/cairn-node"))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("cairn-node (%s): %d bytes", arch, fi.Size())
			if fi.Size() > maxNodeBytes {
				t.Errorf("cairn-node (%s) is %.1f MB installed, more than %.0f MB: did a dependency bring back a dynamic reflect method lookup (go build -ldflags=-dumpdep, grep ReflectMethod), or an applet grow? See docs/components.md",
					arch, float64(fi.Size())/1e6, float64(maxNodeBytes)/1e6)
			}
		})
	}
}

// TestHelpTemplates runs the help pages that text/template renders by
// calling methods (kubectl's through cobra, containerd's and ctr's through
// urfave/cli): the method lookup cairn-node's text/template does by a fixed
// list of names (internal/dceoverlay) must still find every one they call.
func TestHelpTemplates(t *testing.T) {
	root := tree(t, "amd64")
	tests := []struct {
		args []string
		want []string // in the output, in this order
	}{
		{[]string{"kubectl", "--help"}, []string{"Basic Commands (Beginner):", "create", "Usage:", "kubectl [flags] [options]"}},
		{[]string{"kubectl", "get", "--help"}, []string{"Examples:", "Options:", "--output=", "Usage:", "kubectl get [(-o|--output=)"}},
		{[]string{"kubectl", "options"}, []string{"--kubeconfig=", "--server="}},
		{[]string{"containerd", "--help"}, []string{"USAGE:", "COMMANDS:", "config", "GLOBAL OPTIONS:", "--config value"}},
		{[]string{"ctr", "images", "import", "--help"}, []string{"USAGE:", "ctr images import", "OPTIONS:", "--all-platforms"}},
		{[]string{"kine", "--help"}, []string{"USAGE:", "GLOBAL OPTIONS:", "--endpoint value"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := run(t, time.Minute, filepath.Join(root, "usr/bin", tt.args[0]), tt.args[1:]...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if strings.Contains(out, "can't evaluate field") || strings.Contains(out, "error calling") {
				t.Fatalf("a template failed:\n%s", out)
			}
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("no %q (after the ones before it) in:\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
