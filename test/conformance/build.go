package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// buildModule is the module (test/conformance/build) that pins what the
// run builds: k8s.io/kubernetes with its staging modules, ginkgo, the
// test images' Go programs.
const buildModule = "test/conformance/build"

// kubeModule is k8s.io/kubernetes as the build module resolves it.
type kubeModule struct {
	Version string
	Time    time.Time
	Dir     string
}

// kubernetes returns the build module's k8s.io/kubernetes (downloading it
// when the module cache lacks it) and checks it is the version the nodes
// run (image/components/versions.env): conformance is of a cluster
// against the suite of its own version.
func kubernetes(ctx context.Context, repo string) (kubeModule, error) {
	var m kubeModule
	for _, args := range [][]string{{"mod", "download", "k8s.io/kubernetes"}, {"list", "-m", "-json", "k8s.io/kubernetes"}} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = filepath.Join(repo, buildModule)
		out, err := cmd.Output()
		if err != nil {
			return m, fmt.Errorf("go %s in %s: %w%s", strings.Join(args, " "), buildModule, err, stderrOf(err))
		}
		if args[0] == "list" {
			if err := json.Unmarshal(out, &m); err != nil {
				return m, fmt.Errorf("go list -m -json k8s.io/kubernetes: %w", err)
			}
		}
	}
	if m.Dir == "" {
		return m, fmt.Errorf("k8s.io/kubernetes %s is not in the module cache after go mod download", m.Version)
	}
	env, err := os.ReadFile(filepath.Join(repo, "image/components/versions.env"))
	if err != nil {
		return m, err
	}
	nodes := ""
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "KUBERNETES_VERSION="); ok {
			nodes = strings.TrimSpace(v)
		}
	}
	if nodes != m.Version {
		return m, fmt.Errorf("%s/go.mod has k8s.io/kubernetes %s but the nodes run %s (image/components/versions.env); "+
			"run 'go get k8s.io/kubernetes@%s' there and set its staging replaces to v0%s", buildModule, m.Version, nodes, nodes, strings.TrimPrefix(nodes, "v1"))
	}
	return m, nil
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return "\n" + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// kubeLdflags stamps Kubernetes's version into a binary the way its own
// build does (and image/components/build.sh does for the nodes).
func kubeLdflags(k kubeModule) string {
	v := strings.TrimPrefix(k.Version, "v")
	major, rest, _ := strings.Cut(v, ".")
	minor, _, _ := strings.Cut(rest, ".")
	var b strings.Builder
	b.WriteString("-s -w -buildid=")
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		fmt.Fprintf(&b, " -X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean -X %s.buildDate=%s",
			pkg, k.Version, pkg, major, pkg, minor, pkg, pkg, k.Time.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// buildSuite builds OUT/bin/e2e.test (go test -c of
// k8s.io/kubernetes/test/e2e) and OUT/bin/ginkgo (the CLI that runs it
// in parallel) in the build module. The suite's dependencies are compiled
// first by building the build module's own package, which imports what
// e2e_test.go does, with a progress line every 30 s; the test binary is
// then little more than a link.
func buildSuite(ctx context.Context, repo, out string, k kubeModule, log func(string, ...any)) error {
	dir := filepath.Join(repo, buildModule)
	bin := filepath.Join(out, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	list := exec.CommandContext(ctx, "go", "list", "-deps", "-test", "k8s.io/kubernetes/test/e2e")
	list.Dir, list.Env = dir, env
	deps, err := list.Output()
	if err != nil {
		return fmt.Errorf("go list -deps -test k8s.io/kubernetes/test/e2e: %w%s", err, stderrOf(err))
	}
	total := bytes.Count(deps, []byte("\n"))
	start := time.Now()
	log("e2e.test: compiling its %d packages (a cold build is 15-30 minutes on 2 cores and needs ~4 GB; then cached)", total)
	compile := exec.CommandContext(ctx, "go", "build", "-v", "-trimpath", ".")
	compile.Dir, compile.Env = dir, env
	if err := countPackages(compile, total, start, log); err != nil {
		return fmt.Errorf("compiling the e2e suite's packages: %w", err)
	}
	e2e := filepath.Join(bin, "e2e.test")
	log("e2e.test: linking (%s so far)", elapsed(start))
	link := exec.CommandContext(ctx, "go", "test", "-c", "-vet=off", "-trimpath", "-ldflags", kubeLdflags(k), "-o", e2e, "k8s.io/kubernetes/test/e2e")
	link.Dir, link.Env = dir, env
	if o, err := link.CombinedOutput(); err != nil {
		return fmt.Errorf("go test -c k8s.io/kubernetes/test/e2e: %v\n%s", err, o)
	}
	g := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(bin, "ginkgo"), "github.com/onsi/ginkgo/v2/ginkgo")
	g.Dir, g.Env = dir, env
	if o, err := g.CombinedOutput(); err != nil {
		return fmt.Errorf("go build github.com/onsi/ginkgo/v2/ginkgo: %v\n%s", err, o)
	}
	log("e2e.test and ginkgo: %s, in %s", bin, elapsed(start))
	return nil
}

// countPackages runs a `go build -v` and says every 30 s how many of
// total packages it compiled; other lines (errors) are kept for the error.
func countPackages(cmd *exec.Cmd, total int, start time.Time, log func(string, ...any)) error {
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	var other strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, last := 0, time.Now()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if strings.ContainsAny(line, " \t#:") {
				if other.Len() < 64<<10 {
					other.WriteString(line + "\n")
				}
				continue
			}
			n++
			if time.Since(last) >= 30*time.Second {
				last = time.Now()
				log("e2e.test: %d of at most %d packages compiled, %s", n, total, elapsed(start))
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%v\n%s", err, other.String())
	}
	return nil
}
