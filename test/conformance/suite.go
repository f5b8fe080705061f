package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
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
// is none, from the progress reports the processes posted).
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
		"--progress-report-url", s.progress.url,
		"--non-blocking-taints", s.nonBlocking,
		"--node-os-arch", s.arch,
		"--dns-domain", "cluster.local",
		"-v", "2",
	)
	args = append(args, s.extraE2EFlags...)
	fmt.Fprintf(log, "# %s %s\n", s.ginkgo, strings.Join(shortArgs(args), " "))
	cmd := exec.CommandContext(ctx, s.ginkgo, args...)
	cmd.Env = append(os.Environ(), "KUBE_TEST_REPO_LIST="+s.repoList, "KUBECONFIG="+s.kubeconfig)
	cmd.Stdout, cmd.Stderr = log, log
	// Ctrl-C: ginkgo passes the interrupt on, the specs clean up, and
	// the reports are written; a second one (or 5 minutes) kills.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Minute
	s.progress.startPhase(ph)
	runErr := cmd.Run()
	s.progress.endPhase()
	res, err := readGinkgoReport(filepath.Join(dir, "report.json"), ph.Tests)
	if err != nil {
		res = s.progress.results(ph.Tests)
		fmt.Fprintf(os.Stderr, "conformance: %s: no ginkgo report (%v); results from the progress reports\n", ph.Name, err)
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

// progress receives the e2e processes' progress reports (e2e.test
// --progress-report-url: after each spec, PASSED or FAILED and its name)
// and prints a line per finished test: done/total over the whole run and
// the time since the run started. Each parallel process posts its own
// reports; counting names joins them.
type progress struct {
	url   string
	total int
	start time.Time
	w     io.Writer

	mu    sync.Mutex
	phase string
	want  map[string]bool
	done  map[string]string // name -> passed, failed
	last  time.Time
	srv   *http.Server
	stopT chan struct{}
}

func newProgress(total int, w io.Writer) (*progress, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &progress{url: "http://" + ln.Addr().String() + "/progress", total: total, start: time.Now(), w: w,
		done: map[string]string{}, want: map[string]bool{}}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(ln)
	return p, nil
}

func (p *progress) close() { p.srv.Close() }

func (p *progress) serve(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Msg string `json:"msg"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	state, name, ok := strings.Cut(msg.Msg, " ")
	if ok && (state == "PASSED" || state == "FAILED") {
		p.finished(strings.ToLower(state), name)
	}
}

func (p *progress) finished(state, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.want[name] {
		return
	}
	if _, seen := p.done[name]; seen {
		return
	}
	p.done[name] = state
	p.last = time.Now()
	fmt.Fprintf(p.w, "conformance: [%s %d/%d, %s] %s %s\n", p.phase, len(p.done), p.total, elapsed(p.start), state, name)
}

// startPhase counts ph's tests in and says every 2 minutes that the run
// goes on when no test has finished meanwhile.
func (p *progress) startPhase(ph phase) {
	p.mu.Lock()
	p.phase = ph.Name
	for _, t := range ph.Tests {
		p.want[t] = true
	}
	p.last = time.Now()
	p.stopT = make(chan struct{})
	stop := p.stopT
	p.mu.Unlock()
	fmt.Fprintf(p.w, "conformance: [%s, %s] %d tests, %d at a time\n", ph.Name, elapsed(p.start), len(ph.Tests), ph.Procs)
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.mu.Lock()
				if time.Since(p.last) >= 2*time.Minute {
					fmt.Fprintf(p.w, "conformance: [%s %d/%d, %s] running; the last test finished %s ago\n",
						p.phase, len(p.done), p.total, elapsed(p.start), time.Since(p.last).Round(time.Second))
					p.last = time.Now()
				}
				p.mu.Unlock()
			}
		}
	}()
}

func (p *progress) endPhase() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.stopT)
}

// results are the tests of tests that reported, when ginkgo left no report.
func (p *progress) results(tests []string) map[string]testResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	res := map[string]testResult{}
	for _, t := range tests {
		if st, ok := p.done[t]; ok {
			res[t] = testResult{State: st, At: time.Now(), Message: "from the progress report; see the phase's e2e.log"}
		}
	}
	return res
}

func elapsed(since time.Time) string {
	d := time.Since(since).Round(time.Second)
	return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}
