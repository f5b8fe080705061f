package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// progress prints the run's progress on the console: done/total over the
// whole run and the time since it started, a line at once for each test
// that fails (with its name), and the counts every 30 s while they
// change. It reads them from ginkgo's own output on its way to the
// phase's e2e.log (see output).
//
// e2e.test's --progress-report-url cannot give them: its per-spec report
// is a top-level ReportAfterEach in e2e_test.go, and TestMain (through
// framework.AfterReadingAllFlags) calls ginkgo.PreviewSpecs, which leaves
// the suite with a clone that keeps the top-level containers and suite
// nodes but not that node (ginkgo v2.28.1, internal Suite.Clone), so it
// never runs and only the suite's start and end are posted.
type progress struct {
	total int
	start time.Time
	w     io.Writer

	mu       sync.Mutex
	phase    string
	want     map[string]bool
	done     map[string]string // name -> passed, failed, timedout, ..., skipped: the tests the output named
	passes   int               // the passes the output did not name (ginkgo's "•")
	failures int               // the failures whose name is none of want's
	last     time.Time         // when the last test finished
	said     int               // done/total in the last line printed
	stalled  time.Time         // when the last "running" line was printed
	stopT    chan struct{}
}

func newProgress(total int, w io.Writer) *progress {
	return &progress{total: total, start: time.Now(), w: w, done: map[string]string{}, want: map[string]bool{}}
}

// close ends a phase that is still running.
func (p *progress) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopT != nil {
		close(p.stopT)
		p.stopT = nil
	}
}

// count is done/total's done. Call with mu held.
func (p *progress) count() int { return len(p.done) + p.passes + p.failures }

func (p *progress) prefix() string {
	return fmt.Sprintf("conformance: [%s %d/%d, %s]", p.phase, p.count(), p.total, elapsed(p.start))
}

// finished records a test the output named and prints it.
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
	p.said = p.count()
	fmt.Fprintf(p.w, "%s %s %s\n", p.prefix(), state, name)
}

// passed counts a pass the output did not name, printed with the counts.
func (p *progress) passed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count() >= p.total {
		return
	}
	p.passes++
	p.last = time.Now()
}

// unpassed takes back a pass counted for a "•" that turned out to head a
// block (see ginkgoOutput.Write).
func (p *progress) unpassed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.passes > 0 {
		p.passes--
	}
}

// failedUnnamed prints a failure whose name is none of the run's tests:
// a suite node's (then it is not counted) or a test's name this could not
// read (then it is).
func (p *progress) failedUnnamed(state, text string, test bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if test && p.count() < p.total {
		p.failures++
		p.last = time.Now()
		p.said = p.count()
	}
	fmt.Fprintf(p.w, "%s %s %s\n", p.prefix(), state, text)
}

// counts prints the counts when they changed since the last line. Call
// with mu held.
func (p *progress) counts() {
	if p.count() == p.said {
		return
	}
	p.said = p.count()
	n := map[string]int{"passed": p.passes, "failed": p.failures}
	for _, st := range p.done {
		switch st {
		case "passed", "skipped":
			n[st]++
		default:
			n["failed"]++
		}
	}
	s := fmt.Sprintf("%d passed, %d failed", n["passed"], n["failed"])
	if n["skipped"] > 0 {
		s += fmt.Sprintf(", %d skipped", n["skipped"])
	}
	fmt.Fprintf(p.w, "%s %s\n", p.prefix(), s)
}

// tick prints the counts when they changed, or, when no test has finished
// for 2 minutes, that the run goes on (every 2 minutes).
func (p *progress) tick(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count() != p.said {
		p.counts()
		return
	}
	if now.Sub(p.last) >= 2*time.Minute && now.Sub(p.stalled) >= 2*time.Minute {
		fmt.Fprintf(p.w, "%s running; the last test finished %s ago\n", p.prefix(), now.Sub(p.last).Round(time.Second))
		p.stalled = now
	}
}

// startPhase counts ph's tests in and ticks every 30 s until endPhase.
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
			case now := <-t.C:
				p.tick(now)
			}
		}
	}()
}

// endPhase stops the ticks and prints the counts the phase left.
func (p *progress) endPhase() {
	p.close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts()
}

// results are the results of the tests the output named, for when
// ginkgo left no report: the failures, and the passes it printed a block
// for.
func (p *progress) results(tests []string) map[string]testResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	res := map[string]testResult{}
	for _, t := range tests {
		if st, ok := p.done[t]; ok {
			res[t] = testResult{State: st, At: time.Now(), Message: "from ginkgo's output; see the phase's e2e.log"}
		}
	}
	return res
}

func elapsed(since time.Time) string {
	d := time.Since(since).Round(time.Second)
	return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// output returns the writer for ginkgo's stdout and stderr: it writes
// everything to log and reads the progress from it.
func (p *progress) output(log io.Writer) io.Writer { return &ginkgoOutput{log: log, p: p, marks: true} }

// ginkgoOutput reads ginkgo v2's default (not verbose) output as it
// streams (reporters/default_reporter.go, DidRun). A spec that passes
// with nothing to show prints "•", a skipped one "S", a pending one "P",
// all on one line that only a block ends; a spec with something to show
// (a failure, or, run in parallel, output of its own) prints a block:
//
//	------------------------------
//	• [FAILED] [6.460 seconds]
//	[sig-node] Secrets [It] should be consumable via the environment [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]
//	k8s.io/kubernetes@v1.36.3/test/e2e/common/node/secrets.go:98
//	  ...
//	------------------------------
//
// The header's state is one of FAILED, TIMEDOUT, INTERRUPTED, PANICKED,
// ABORTED, none (passed, "• [0.460 seconds]"; "↺ [FLAKEY TEST - TOOK 2
// ATTEMPTS TO PASS] [...]"), or a skip at run time ("S [...]"); a suite
// node's header starts with its type ("[SynchronizedBeforeSuite]
// [FAILED] [...]"). The name line is the spec's full name with the
// failed node's type put in ("[It]", "[BeforeEach]", "TOP-LEVEL
// [BeforeEach]") and its labels appended. Blocks follow each other with
// one delimiter between them, so a "•" that starts a line after one is
// either a pass or the next block's header: the next byte tells.
type ginkgoOutput struct {
	log io.Writer
	p   *progress

	line    []byte // the current line, its first maxOutputLine bytes
	n       int    // the current line's length
	marks   bool   // the current line so far is only "•", "S", "P"
	partial int    // bytes of a "•" seen so far (it is e2 80 a2)
	pending bool   // a "•" started the line: a pass, or a header's
	counted bool   // pending was counted as a pass when a Write ended
	delim   bool   // the last line was a delimiter
	header  string // the last line was a block's header, with this state
	suite   bool   // ... of a suite node
}

// maxOutputLine bounds the part of a line kept: a spec's name line is a
// few hundred bytes; a line of marks can be thousands and is only counted.
const maxOutputLine = 4 << 10

var (
	outputDelimiter = strings.Repeat("-", 30)
	// reBlockHeader is a block's first line: the spec's mark or the
	// suite node's type, maybe the state, the run time.
	reBlockHeader = regexp.MustCompile(`^(•|↺|S|\[[A-Za-z() ]+\]) (?:\[([A-Z]+)\] )?(?:.* )?\[[0-9.]+ seconds\]$`)
	bullet        = []byte("•")
)

func (g *ginkgoOutput) Write(b []byte) (int, error) {
	n, err := g.log.Write(b)
	for _, c := range b[:n] {
		g.byte(c)
	}
	if g.pending && !g.counted {
		// ginkgo writes a header's text at once (one write to the
		// pipe), so a "•" that ends a Write is a mark; taken back if
		// " [" follows after all.
		g.p.passed()
		g.counted = true
	}
	return n, err
}

func (g *ginkgoOutput) byte(c byte) {
	if g.pending {
		g.pending = false
		switch {
		case c == 'S' || c == 'P' || c == '\n' || c == bullet[0]:
			if !g.counted {
				g.p.passed()
			}
		case g.counted:
			g.p.unpassed()
		}
		g.counted = false
	}
	if c == '\n' {
		g.endLine()
		return
	}
	if g.n < maxOutputLine {
		g.line = append(g.line, c)
	}
	g.n++
	if !g.marks {
		return
	}
	switch {
	case g.partial > 0 && c == bullet[g.partial]:
		g.partial++
		if g.partial == len(bullet) {
			g.partial = 0
			if g.n == len(bullet) {
				g.pending = true
			} else {
				g.p.passed()
			}
		}
	case g.partial == 0 && c == bullet[0]:
		g.partial = 1
	case g.partial == 0 && (c == 'S' || c == 'P'):
	default:
		g.marks = false
	}
}

func (g *ginkgoOutput) endLine() {
	line := strings.TrimSuffix(string(g.line), "\r")
	switch {
	case g.header != "":
		g.named(g.header, g.suite, line)
		g.header = ""
	case g.delim:
		if m := reBlockHeader.FindStringSubmatch(line); m != nil {
			g.suite = strings.HasPrefix(m[1], "[")
			switch {
			case m[1] == "S":
				g.header = "skipped"
			case m[2] == "":
				g.header = "passed"
			default:
				g.header = strings.ToLower(m[2])
			}
		}
	}
	g.delim = line == outputDelimiter
	g.line, g.n, g.marks, g.partial = g.line[:0], 0, true, 0
}

// named takes the name line of a block whose header said state.
func (g *ginkgoOutput) named(state string, suite bool, line string) {
	line = strings.TrimSpace(line)
	if suite {
		if state != "passed" && state != "skipped" {
			g.p.failedUnnamed(state, shorten(line, 300)+" (see e2e.log)", false)
		}
		return
	}
	g.p.mu.Lock()
	name := specName(line, g.p.want)
	g.p.mu.Unlock()
	if name == "" {
		if state != "passed" && state != "skipped" {
			g.p.failedUnnamed(state, shorten(line, 300), true)
		} else {
			g.p.passed()
		}
		return
	}
	g.p.finished(state, name)
}

// ginkgoNodeTypes are the node types a name line can name: the node that
// failed, put in after its container's text or before the spec's.
var ginkgoNodeTypes = []string{"It", "BeforeEach", "JustBeforeEach", "AfterEach", "JustAfterEach", "BeforeAll", "AfterAll",
	"DeferCleanup", "DeferCleanup (Each)", "DeferCleanup (All)", "ReportBeforeEach", "ReportAfterEach"}

// specName reads a block's name line: the test of want it names, or "".
func specName(line string, want map[string]bool) string {
	s := line
	if rest, ok := strings.CutPrefix(s, "TOP-LEVEL ["); ok {
		if _, after, ok := strings.Cut(rest, "] "); ok {
			s = after
		}
	}
	for _, t := range ginkgoNodeTypes {
		if rest, ok := strings.CutPrefix(s, "["+t+"] "); ok {
			s = rest
			break
		}
		if i := strings.Index(s, " ["+t+"]"); i >= 0 {
			s = s[:i] + s[i+len(t)+3:]
			break
		}
	}
	// then the labels, the version constraints, the component ones
	for range 4 {
		if want[s] {
			return s
		}
		i := strings.LastIndex(s, " [")
		if i < 0 || !strings.HasSuffix(s, "]") {
			return ""
		}
		s = s[:i]
	}
	return ""
}

// shorten cuts s to at most max bytes, on a rune boundary.
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "..."
}
