package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestComponentsStageInterrupted stops publish.sh while it copies a tree
// into place, as Ctrl-C on `make components` does: the half-copied tree is
// removed, and the published one is untouched.
func TestComponentsStageInterrupted(t *testing.T) {
	script, err := filepath.Abs("components/publish.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "components")
	src := filepath.Join(dir, "tree")
	os.MkdirAll(out, 0o755)
	os.MkdirAll(filepath.Join(src, "usr", "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "usr", "bin", "cairn-node"), []byte("new"), 0o755)
	// A cp that copies part of the tree, then takes its time.
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "cp"), []byte("#!/bin/sh\nmkdir -p \"$3/usr\"\nexec sleep 60\n"), 0o755)

	cmd := exec.Command("bash", script, "stage", out, "amd64", src)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var partial []string
	for range 500 {
		if partial, _ = filepath.Glob(filepath.Join(out, ".linux-amd64.*", "usr")); len(partial) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(partial) == 0 {
		cmd.Process.Kill()
		t.Fatal("publish.sh stage never began copying")
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) // the terminal's Ctrl-C: the whole process group
	err = cmd.Wait()
	if err == nil {
		t.Errorf("publish.sh stage ended with status 0 after SIGINT")
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".linux-amd64.*")); len(left) > 0 {
		t.Errorf("an interrupted stage left %v", left)
	}
}
