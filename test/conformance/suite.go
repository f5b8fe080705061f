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
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// listConformance asks e2e.test for its [Conformance] tests two ways, the
// list in test/conformance/testdata/conformance.yaml
// (-list-conformance-tests) and the names the binary's specs really have
// (-list-tests, what --focus matches), and returns the names, sorted,
// once they agree.
func listConformance(ctx context.Context, e2e string) ([]string, error) {
	out, err := exec.CommandContext(ctx, e2e, "-list-conformance-tests").Output()
	if err != nil {
		return nil, fmt.Errorf("%s -list-conformance-tests: %w", e2e, err)
	}
	var listed []struct {
		Codename string `yaml:"codename"`
	}
	if err := yaml.Unmarshal(out, &listed); err != nil {
		return nil, fmt.Errorf("%s -list-conformance-tests: %w", e2e, err)
	}
	out, err = exec.CommandContext(ctx, e2e, "-list-tests").Output()
	if err != nil {
		return nil, fmt.Errorf("%s -list-tests: %w", e2e, err)
	}
	specs := parseListTests(out)
	var names []string
	var missing []string
	for _, l := range listed {
		n := strings.Join(strings.Fields(l.Codename), " ")
		if !specs[n] {
			missing = append(missing, n)
		}
		names = append(names, n)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%d of conformance.yaml's %d tests have no spec of that name in %s (first: %q); the names would not focus",
			len(missing), len(listed), e2e, missing[0])
	}
	sort.Strings(names)
	return names, nil
}

// reListedSpec is a line of e2e.test -list-tests: an indent, FILE:LINE:,
// the spec's full name.
var reListedSpec = regexp.MustCompile(`^\s+\S+:\d+: (.+)$`)

func parseListTests(out []byte) map[string]bool {
	specs := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := reListedSpec.FindStringSubmatch(sc.Text()); m != nil {
			specs[strings.TrimSpace(m[1])] = true
		}
	}
	return specs
}

// plan splits the tests to run into the parallel part and the [Serial]
// part (run after it, one at a time, as upstream does), leaving out the
// allowed skips, those focus does not match, and those done says passed
// already (-resume).
func plan(names []string, focus *regexp.Regexp, passed map[string]bool) (parallel, serial []string) {
	for _, n := range names {
		if skipReason(n) != "" || (focus != nil && !focus.MatchString(n)) || passed[n] {
			continue
		}
		if strings.Contains(n, "[Serial]") {
			serial = append(serial, n)
		} else {
			parallel = append(parallel, n)
		}
	}
	return parallel, serial
}

// focusRegexp matches exactly one spec: ginkgo matches --focus against
// the suite's description ("Kubernetes e2e suite", no brackets), a space,
// and the spec's full name (which starts with "[sig-").
func focusRegexp(name string) string { return `^[^\[]* ` + regexp.QuoteMeta(name) + "$" }

// phase is one ginkgo run.
type phase struct {
	Name    string // parallel, serial
	Procs   int
	Tests   []string
	Timeout time.Duration
}

// suiteRun is what every phase needs.
type suiteRun struct {
	e2e, ginkgo   string
	kubeconfig    string
	kubectl       string
	repoList      string
	out           string
	nonBlocking   string
	arch          string
	progress      *progress
	extraE2EFlags []string
}

// run runs one phase with ginkgo, its output in OUT/PHASE/e2e.log, and
// returns the phase's results from ginkgo's JSON report (or, when there
// is none, the ones its output named: see progress).
func (s *suiteRun) run(ctx context.Context, ph phase) (map[string]testResult, error) {
	dir := filepath.Join(s.out, ph.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "e2e.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	args := []string{
		"--procs", fmt.Sprint(ph.Procs),
		"--timeout", ph.Timeout.String(),
		"--no-color",
		"--output-dir", dir,
		"--json-report", "report.json",
		"--junit-report", "junit.xml",
	}
	for _, t := range ph.Tests {
		args = append(args, "--focus", focusRegexp(t))
	}
	args = append(args, s.e2e, "--",
		"--kubeconfig", s.kubeconfig,
		"--kubectl-path", s.kubectl,
		"--provider", "skeleton",
		"--disable-log-dump",
		"--report-dir", dir,
		"--e2e-output-dir", dir,
		"--non-blocking-taints", s.nonBlocking,
		"--node-os-arch", s.arch,
		"--dns-domain", "cluster.local",
		"-v", "2",
	)
	args = append(args, s.extraE2EFlags...)
	fmt.Fprintf(log, "# %s %s\n", s.ginkgo, strings.Join(shortArgs(args), " "))
	cmd := exec.CommandContext(ctx, s.ginkgo, args...)
	cmd.Env = append(os.Environ(), "KUBE_TEST_REPO_LIST="+s.repoList, "KUBECONFIG="+s.kubeconfig)
	// ginkgo's output goes to the log through the progress reader (one
	// pipe: exec shares it when Stdout and Stderr are the same writer).
	out := s.progress.output(log)
	cmd.Stdout, cmd.Stderr = out, out
	// Ctrl-C: the interrupt goes to ginkgo's process group, as a
	// terminal's would (ginkgo alone, with one process, did not stop its
	// e2e.test); the specs clean up and the reports are written; 5
	// minutes later it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 5 * time.Minute
	s.progress.startPhase(ph)
	runErr := cmd.Run()
	s.progress.endPhase()
	res, err := readGinkgoReport(filepath.Join(dir, "report.json"), ph.Tests)
	if err != nil {
		res = s.progress.results(ph.Tests)
		fmt.Fprintf(os.Stderr, "conformance: %s: no ginkgo report (%v); results from its output (the failures; see the log)\n", ph.Name, err)
	}
	if runErr != nil && ctx.Err() == nil && len(res) == 0 {
		return res, fmt.Errorf("ginkgo (%s phase): %w; see %s", ph.Name, runErr, log.Name())
	}
	return res, nil
}

// shortArgs elides the long --focus list for the log's first line.
func shortArgs(args []string) []string {
	var out []string
	n := 0
	for i := 0; i < len(args); i++ {
		if args[i] == "--focus" && i+1 < len(args) {
			n++
			i++
			continue
		}
		out = append(out, args[i])
	}
	if n > 0 {
		out = append(out, fmt.Sprintf("(and --focus for each of %d tests)", n))
	}
	return out
}

// ginkgoSpec is the part of a ginkgo SpecReport (its JSON report) read here.
type ginkgoSpec struct {
	ContainerHierarchyTexts []string
	LeafNodeType            string
	LeafNodeText            string
	State                   string
	StartTime               time.Time
	RunTime                 time.Duration
	Failure                 *struct{ Message string }
}

func (s ginkgoSpec) fullText() string {
	return strings.TrimSpace(strings.Join(append(append([]string{}, s.ContainerHierarchyTexts...), s.LeafNodeText), " "))
}

// readGinkgoReport reads ginkgo's --json-report and returns the results
// of the tests asked for.
func readGinkgoReport(path string, tests []string) (map[string]testResult, error) {
	data, err := readBounded(path, 512<<20)
	if err != nil {
		return nil, err
	}
	var reports []struct{ SpecReports []ginkgoSpec }
	if err := json.Unmarshal(data, &reports); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	want := map[string]bool{}
	for _, t := range tests {
		want[t] = true
	}
	res := map[string]testResult{}
	for _, r := range reports {
		for _, s := range r.SpecReports {
			n := s.fullText()
			if s.LeafNodeType != "It" || !want[n] {
				continue
			}
			tr := testResult{State: s.State, Seconds: s.RunTime.Seconds(), At: s.StartTime}
			if s.Failure != nil && s.State != "passed" {
				tr.Message = s.Failure.Message
			}
			if s.State == "skipped" && tr.Message == "" {
				continue // not run: filtered out
			}
			res[n] = tr
		}
	}
	return res, nil
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d MiB", path, max>>20)
	}
	return data, nil
}
