package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestComponentsPublishNeverMixes publishes two trees in turn with
// image/components/publish.sh, as a components build does, while builds
// read the published tree the way Build does: every read sees one tree
// whole, never files of both.
func TestComponentsPublishNeverMixes(t *testing.T) {
	script, err := filepath.Abs("components/publish.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "components")
	os.MkdirAll(out, 0o755)
	// Two versions of a tree of many files, each file naming its version.
	for _, v := range []string{"old", "new"} {
		for i := range 200 {
			p := filepath.Join(dir, v, "usr", "bin", fmt.Sprintf("f%03d", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(v), 0o644)
		}
	}
	publish := func(v string) {
		staged, err := exec.Command("bash", script, "stage", out, "amd64", filepath.Join(dir, v)).Output()
		if err != nil {
			t.Fatalf("publish.sh stage: %v", err)
		}
		if msg, err := exec.Command("bash", script, "swap", out, "amd64", strings.TrimSpace(string(staged))).CombinedOutput(); err != nil {
			t.Fatalf("publish.sh swap: %v: %s", err, msg)
		}
	}
	// A tree published before links existed is replaced too.
	os.MkdirAll(filepath.Join(out, "linux-amd64", "usr"), 0o755)
	publish("old")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			publish([]string{"new", "old"}[i%2])
		}
	}()
	reads := 0
	for try := 0; reads < 40; try++ {
		if try == 400 {
			t.Fatalf("only %d of 400 reads saw a whole tree", reads)
		}
		tree, err := componentsTree(out, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		err = filepath.WalkDir(tree, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			seen[string(b)]++
			return err
		})
		if err != nil {
			// The tree this build resolved was removed two swaps later:
			// a failed build, never a mixed one. Not with two swaps per
			// read at most; say so if it happens.
			t.Logf("read %d: %v", reads, err)
			continue
		}
		if len(seen) != 1 || (seen["old"] != 200 && seen["new"] != 200) {
			t.Fatalf("read %d of %s saw a mixed tree: %v", reads, tree, seen)
		}
		reads++
	}
	cancel()
	<-done
	if left, _ := filepath.Glob(filepath.Join(out, ".linux-amd64.*")); len(left) > 2 {
		t.Errorf("%d staged trees are left, want the current one and the one before: %v", len(left), left)
	}
}
