// Command conformance runs Kubernetes's own conformance suite (the
// [Conformance] tests of the e2e.test of the Kubernetes version the nodes
// run) on a local cairn cluster, offline: it builds e2e.test and ginkgo
// from the pinned module (test/conformance/build), builds the test images
// the suite names (agnhost, busybox, pause, nginx, ...) and maps the
// suite's registries to their local names with KUBE_TEST_REPO_LIST,
// starts `cairn cluster up --servers 2 --agents 2 --datastore postgres`
// with the images carried into every node by --image-archive, runs the
// parallel part and then the [Serial] part, and writes a JUnit file and a
// summary whose last line is `N passed, N failed, N skipped`. With
// -platform qemu -focus-set small it runs Pods, Services, DNS and
// ConfigMap volumes on two VMs booted from a system image built with the
// test images in it. `make conformance` runs it (as root);
// docs/conformance.md says more.
//
// usage: go run ./test/conformance [flags]   (from the repository's root)
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	out, cairn, components, kernel string
	steps                          map[string]bool
	images                         []string
	name, platform, datastore      string
	servers, agents, procs         int
	memory                         int // qemu: each VM's MiB
	qemuAgents                     int // container: agents that are VMs
	kubeconfig                     string
	keep, resume                   bool
	focus                          *regexp.Regexp
	set                            *focusSet // -focus-set, or nil
	timeout                        time.Duration
	nonBlocking                    string
}

// runDir is where a run's results, JUnit file and logs go: OUT for the
// container platform, OUT/qemu for VMs (a smaller run whose passes must
// not count for the full run's -resume).
func (o *options) runDir() string {
	if o.vms() {
		return filepath.Join(o.out, "qemu")
	}
	return o.out
}

// vms says whether the cluster has VMs: every node (-platform qemu) or
// some agents (-qemu-agents). They boot a system image with the test
// images in it (qemuImage).
func (o *options) vms() bool { return o.platform == "qemu" || o.qemuAgents > 0 }

// focusSet is a named selection of conformance tests, and the test images
// they use (the images a QEMU image carries for them).
type focusSet struct {
	Name   string
	Focus  string
	Images []string // imageSpec.File
	About  string
}

var focusSets = []focusSet{{
	Name: "small",
	// "Pods " leaves out PodTemplates; "[sig-node] Pods Extended" is in.
	Focus:  `^\[sig-node\] Pods |^\[sig-network\] (Services|DNS) |^\[sig-storage\] ConfigMap `,
	Images: []string{"agnhost", "agnhost-prev", "busybox", "pause", "nginx", "glibc-dns-testing"},
	About:  "Pods, Services, DNS and ConfigMap volumes (issue 24's QEMU run)",
}}

// qemuBoards are the QEMU boards of each architecture the images are
// built for.
var qemuBoards = map[string]string{"amd64": "qemu-x86_64", "arm64": "qemu-arm64"}

var allSteps = []string{"suite", "images", "cluster", "run"}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	o := &options{}
	var steps, images, focus, set string
	fs.StringVar(&o.out, "out", "out/conformance", "where the binaries, images, reports and results.json go")
	fs.StringVar(&steps, "steps", strings.Join(allSteps, ","), "what to do, in order: suite (build e2e.test and ginkgo), images, cluster (cairn cluster up), run; a step left out takes the previous one's output from -out")
	fs.StringVar(&images, "images", "", "build only these test images (comma-separated: agnhost, busybox, nginx, ...); default all")
	fs.StringVar(&o.cairn, "cairn", "out/bin/cairn", "the cairn CLI (make cairn)")
	fs.StringVar(&o.components, "components", "out/components", "node components (make components-ARCH): the cluster's image and kubectl")
	fs.StringVar(&o.kernel, "kernel", "out/debs", "kernel packages for the cluster's image (make kernels)")
	fs.StringVar(&o.name, "name", "conformance", "the cluster's name")
	fs.StringVar(&o.platform, "platform", "container", "the cluster's platform: container (the images reach the nodes with --image-archive) or qemu (VMs under TCG, 1 server and 1 agent unless -servers/-agents say otherwise; the images are built into the VMs' system image)")
	fs.StringVar(&o.datastore, "datastore", "postgres", "the cluster's datastore")
	fs.IntVar(&o.servers, "servers", 2, "servers (qemu: 1)")
	fs.IntVar(&o.agents, "agents", 2, "agents (qemu: 1)")
	fs.IntVar(&o.memory, "memory", 6144, "qemu, -qemu-agents: each VM's memory in MiB (the test images are imported into the VMs' RAM)")
	fs.IntVar(&o.qemuAgents, "qemu-agents", 0, "container: this many of the agents are QEMU VMs under TCG (cairn cluster up --qemu-agents): a slow node among native ones; the images are built into the nodes' system image")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "run against this running cluster instead of starting one (default with -steps lacking cluster: the cluster NAME's)")
	fs.BoolVar(&o.keep, "keep", false, "leave the cluster this run started running at the end (cairn cluster down --name NAME removes it)")
	fs.StringVar(&focus, "focus", "", "run only the conformance tests whose full names match this regular expression (e.g. 'DNS should provide DNS for services')")
	fs.StringVar(&set, "focus-set", "", "run a named set of conformance tests instead of -focus: "+focusSetNames())
	fs.BoolVar(&o.resume, "resume", false, "run only the tests that have not passed in OUT/results.json (after an interrupted or failed run)")
	fs.IntVar(&o.procs, "procs", 4, "ginkgo processes for the parallel part (the [Serial] part runs one)")
	fs.DurationVar(&o.timeout, "timeout", 8*time.Hour, "ginkgo's limit for each part")
	fs.StringVar(&o.nonBlocking, "non-blocking-taints", "node-role.kubernetes.io/control-plane", "taints that keep a node out of the suite's count of schedulable nodes without failing it")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	switch o.platform {
	case "container":
		if given["memory"] && o.qemuAgents == 0 {
			return nil, fmt.Errorf("-memory is each VM's memory: give it with -platform qemu or -qemu-agents")
		}
		if o.qemuAgents < 0 || o.qemuAgents > o.agents {
			return nil, fmt.Errorf("-qemu-agents %d: want 0 to -agents (%d)", o.qemuAgents, o.agents)
		}
		if o.qemuAgents > 0 {
			if !given["name"] {
				o.name = "conformance-qemu"
			}
			if qemuBoards[runtime.GOARCH] == "" {
				return nil, fmt.Errorf("-qemu-agents: no QEMU board for this machine's architecture (%s)", runtime.GOARCH)
			}
		}
	case "qemu":
		if o.qemuAgents != 0 {
			return nil, fmt.Errorf("-qemu-agents is for -platform container: with qemu every node is a VM")
		}
		if !given["servers"] {
			o.servers = 1
		}
		if !given["agents"] {
			o.agents = 1
		}
		if !given["name"] {
			o.name = "conformance-qemu"
		}
		if o.memory < 2048 || o.memory > 64<<10 {
			return nil, fmt.Errorf("-memory %d: want 2048 to 65536 MiB", o.memory)
		}
		if qemuBoards[runtime.GOARCH] == "" {
			return nil, fmt.Errorf("-platform qemu: no QEMU board for this machine's architecture (%s), which the test images are built for", runtime.GOARCH)
		}
	default:
		return nil, fmt.Errorf("-platform %q: want container or qemu", o.platform)
	}
	if set != "" {
		if focus != "" {
			return nil, fmt.Errorf("-focus-set %s and -focus: give one", set)
		}
		for i := range focusSets {
			if focusSets[i].Name == set {
				o.set = &focusSets[i]
			}
		}
		if o.set == nil {
			return nil, fmt.Errorf("-focus-set %q: want one of %s", set, focusSetNames())
		}
		focus = o.set.Focus
	}
	o.steps = map[string]bool{}
	for _, s := range strings.Split(steps, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allSteps, s) {
			return nil, fmt.Errorf("-steps: %q is not one of %s", s, strings.Join(allSteps, ", "))
		}
		o.steps[s] = true
	}
	if images != "" {
		known := map[string]bool{}
		for _, s := range testImages() {
			known[s.File] = true
		}
		for _, n := range strings.Split(images, ",") {
			if !known[n] {
				return nil, fmt.Errorf("-images: no test image %q", n)
			}
			o.images = append(o.images, n)
		}
	}
	if focus != "" {
		re, err := regexp.Compile(focus)
		if err != nil {
			return nil, fmt.Errorf("-focus: %v", err)
		}
		o.focus = re
	}
	if o.procs < 1 || o.procs > 32 {
		return nil, fmt.Errorf("-procs %d: want 1 to 32", o.procs)
	}
	if o.timeout < time.Minute || o.timeout > 48*time.Hour {
		return nil, fmt.Errorf("-timeout %s: want 1m to 48h", o.timeout)
	}
	if o.steps["cluster"] && o.kubeconfig != "" {
		return nil, fmt.Errorf("-kubeconfig runs against a cluster that is there: leave cluster out of -steps")
	}
	return o, nil
}

func focusSetNames() string {
	var b strings.Builder
	for i, s := range focusSets {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s (%s)", s.Name, s.About)
	}
	return b.String()
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "conformance: "+format+"\n", args...) }

func run(ctx context.Context, o *options) (int, error) {
	repo, err := os.Getwd()
	if err != nil {
		return 1, err
	}
	if _, err := os.Stat(filepath.Join(repo, buildModule, "go.mod")); err != nil {
		return 2, fmt.Errorf("run me from cairn's repository root (no %s/go.mod here)", buildModule)
	}
	for _, p := range []*string{&o.out, &o.cairn, &o.components, &o.kernel} {
		if *p, err = filepath.Abs(*p); err != nil {
			return 1, err
		}
	}
	if o.steps["cluster"] && os.Geteuid() != 0 {
		return 2, fmt.Errorf("the cluster step runs cairn cluster up, which needs root (run make conformance with sudo, or give -kubeconfig and -steps without cluster)")
	}
	start := time.Now()
	kube, err := kubernetes(ctx, repo)
	if err != nil {
		return 1, err
	}
	logf("Kubernetes %s's suite, from %s", kube.Version, kube.Dir)
	bin := filepath.Join(o.out, "bin")
	e2e, ginkgo := filepath.Join(bin, "e2e.test"), filepath.Join(bin, "ginkgo")

	if o.steps["suite"] {
		if err := buildSuite(ctx, repo, o.out, kube, logf); err != nil {
			return 1, err
		}
	}
	repoListPath := filepath.Join(o.out, "repo-list.yaml")
	if o.steps["images"] {
		specs := testImages()
		if len(o.images) > 0 {
			specs = slices.DeleteFunc(specs, func(s imageSpec) bool { return !slices.Contains(o.images, s.File) })
		}
		b := &builder{repo: repo, out: o.out, arch: runtime.GOARCH, kubeDir: kube.Dir, aptDir: "/var/lib/apt/lists", log: logf}
		if _, err := b.buildImages(ctx, specs); err != nil {
			return 1, err
		}
		if err := os.WriteFile(repoListPath, []byte(repoList()), 0o644); err != nil {
			return 1, err
		}
	}
	if !o.steps["run"] && !o.steps["cluster"] {
		logf("built in %s", elapsed(start))
		return 0, nil
	}
	if !o.steps["run"] {
		kubeconfig, err := clusterUp(ctx, o)
		if err != nil {
			return 1, err
		}
		logf("cluster %s is up: KUBECONFIG=%s", o.name, kubeconfig)
		return 0, nil
	}
	// Everything the run needs is checked before a cluster is started.
	for _, p := range []string{e2e, ginkgo, repoListPath} {
		if _, err := os.Stat(p); err != nil {
			return 1, fmt.Errorf("%s is missing: run with -steps suite,images first", p)
		}
	}
	names, err := listConformance(ctx, e2e)
	if err != nil {
		return 1, err
	}
	runDir := o.runDir()
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return 1, err
	}
	results, err := loadResults(filepath.Join(runDir, "results.json"), kube.Version)
	if err != nil {
		return 1, err
	}
	var passed map[string]bool
	if o.resume {
		passed = results.passedSet()
	}
	parallel, serial := plan(names, o.focus, passed)
	skips := 0
	for _, n := range names {
		if skipReason(n) != "" {
			skips++
		}
	}
	logf("%d [Conformance] tests in Kubernetes %s; this run: %d in parallel, then %d [Serial]; %d allowed skips (docs/conformance.md)",
		len(names), kube.Version, len(parallel), len(serial), skips)
	if len(parallel)+len(serial) == 0 {
		summarize(names, results).print(os.Stdout, results)
		return 0, nil
	}

	kubeconfig, started := o.kubeconfig, false
	if o.steps["images"] && !o.steps["cluster"] {
		logf("the images were rebuilt, but a running cluster's nodes imported theirs when they booted: they run the old ones until the cluster is started again (cairn cluster down --name %s, then -steps cluster,run)", o.name)
	}
	if o.steps["cluster"] {
		if kubeconfig, err = clusterUp(ctx, o); err != nil {
			return 1, err
		}
		started = true
	} else if kubeconfig == "" {
		kubeconfig = filepath.Join("/var/lib/cairn-cluster", o.name, "kubeconfig")
	}

	prog := newProgress(len(parallel)+len(serial), os.Stderr)
	defer prog.close()
	s := &suiteRun{
		e2e: e2e, ginkgo: ginkgo, kubeconfig: kubeconfig,
		kubectl:     filepath.Join(o.components, "linux-"+runtime.GOARCH, "usr/bin/kubectl"),
		repoList:    repoListPath,
		out:         runDir,
		nonBlocking: o.nonBlocking,
		arch:        runtime.GOARCH,
		progress:    prog,
	}
	incomplete := false
	for _, ph := range []phase{
		{Name: "parallel", Procs: o.procs, Tests: parallel, Timeout: o.timeout},
		{Name: "serial", Procs: 1, Tests: serial, Timeout: o.timeout},
	} {
		if len(ph.Tests) == 0 || ctx.Err() != nil {
			continue
		}
		res, err := s.run(ctx, ph)
		for n, r := range res {
			results.Tests[n] = r
		}
		if serr := results.save(filepath.Join(runDir, "results.json")); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return 1, err
		}
		if len(res) < len(ph.Tests) {
			incomplete = true
			logf("%s: %d of %d tests left no result (see %s)", ph.Name, len(ph.Tests)-len(res), len(ph.Tests), filepath.Join(runDir, ph.Name, "e2e.log"))
		}
	}

	sum := summarize(names, results)
	junit := filepath.Join(runDir, "junit_conformance.xml")
	if err := writeJUnit(junit, names, results, sum); err != nil {
		return 1, err
	}
	logf("JUnit: %s; results: %s; the suite's own logs and reports: %s/{parallel,serial}/", junit, filepath.Join(runDir, "results.json"), runDir)
	logf("took %s", elapsed(start))
	if started && ctx.Err() == nil && !o.keep {
		if err := clusterDown(o); err != nil {
			logf("%v", err)
		}
	} else if started {
		logf("the cluster is left running: KUBECONFIG=%s; remove it with: %s cluster down --name %s", kubeconfig, o.cairn, o.name)
	}
	sum.print(os.Stdout, results)
	if ctx.Err() != nil {
		return 130, errors.New("interrupted; -resume runs what is left")
	}
	if sum.Failed > 0 || incomplete {
		return 1, nil
	}
	return 0, nil
}

// clusterUp starts the cluster with the test images carried in, and
// returns its kubeconfig (the last line cairn cluster up prints): on the
// container platform every archive is given with --image-archive; VMs
// boot a system image built with them (qemuImage).
func clusterUp(ctx context.Context, o *options) (string, error) {
	archives, err := testArchives(o)
	if err != nil {
		return "", err
	}
	args := []string{"cluster", "up", "--name", o.name, "--servers", fmt.Sprint(o.servers), "--agents", fmt.Sprint(o.agents),
		"--datastore", o.datastore, "--platform", o.platform}
	if o.vms() {
		img, err := qemuImage(ctx, o, archives)
		if err != nil {
			return "", err
		}
		// Each VM imports the images under TCG before its kubelet
		// starts: more than the default 20 minutes to be Ready. The
		// native nodes of -qemu-agents import them from the same image.
		args = append(args, "--image", img, "--memory", fmt.Sprint(o.memory), "--timeout", "45m")
		if o.qemuAgents > 0 {
			args = append(args, "--qemu-agents", fmt.Sprint(o.qemuAgents))
		}
	} else {
		args = append(args, "--kernel", o.kernel, "--components", o.components)
		for _, a := range archives {
			args = append(args, "--image-archive", a)
		}
	}
	logf("%s %s", o.cairn, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, o.cairn, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	last := ""
	sc := bufio.NewScanner(io.LimitReader(stdout, 1<<20))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("cairn cluster up: %w (a cluster named %s that is there already: give -steps run -kubeconfig /var/lib/cairn-cluster/%s/kubeconfig, or remove it with cairn cluster down --name %s)",
			err, o.name, o.name, o.name)
	}
	if !filepath.IsAbs(last) {
		return "", fmt.Errorf("cairn cluster up printed %q where the kubeconfig's path should be", last)
	}
	return last, nil
}

func clusterDown(o *options) error {
	cmd := exec.Command(o.cairn, "cluster", "down", "--name", o.name)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cairn cluster down --name %s: %w", o.name, err)
	}
	return nil
}
