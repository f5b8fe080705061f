package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// testResult is one test's last outcome.
type testResult struct {
	State   string    `json:"state"` // passed, failed, timedout, interrupted, panicked, aborted, skipped
	Seconds float64   `json:"seconds"`
	At      time.Time `json:"at"`
	Message string    `json:"message,omitempty"`
}

func (r testResult) passed() bool { return r.State == "passed" }

// resultsFile is OUT/results.json: every test's last outcome across runs,
// so that -resume runs only what has not passed and the JUnit file and
// the summary cover the whole set however many runs it took.
type resultsFile struct {
	Kubernetes string                `json:"kubernetes"`
	Tests      map[string]testResult `json:"tests"`
}

func loadResults(path, kube string) (*resultsFile, error) {
	data, err := readBounded(path, 64<<20)
	if os.IsNotExist(err) {
		return &resultsFile{Kubernetes: kube, Tests: map[string]testResult{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var r resultsFile
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it to start over)", path, err)
	}
	if r.Kubernetes != kube {
		return nil, fmt.Errorf("%s holds results of Kubernetes %s, this suite is %s; remove it to start over", path, r.Kubernetes, kube)
	}
	if r.Tests == nil {
		r.Tests = map[string]testResult{}
	}
	return &r, nil
}

func (r *resultsFile) save(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (r *resultsFile) passedSet() map[string]bool {
	m := map[string]bool{}
	for n, t := range r.Tests {
		if t.passed() {
			m[n] = true
		}
	}
	return m
}

// summary counts the whole conformance set: each test passed, failed,
// skipped (an allowed skip, or one the test made itself) or not run yet.
type summary struct {
	Total, Passed, Failed, Skipped int
	NotRun                         []string
	Failures                       []string          // names
	Skips                          map[string]string // name -> reason
	Seconds                        float64
}

func summarize(names []string, r *resultsFile) summary {
	s := summary{Total: len(names), Skips: map[string]string{}}
	for _, n := range names {
		if why := skipReason(n); why != "" {
			s.Skipped++
			s.Skips[n] = why
			continue
		}
		t, ok := r.Tests[n]
		switch {
		case !ok:
			s.NotRun = append(s.NotRun, n)
		case t.passed():
			s.Passed++
		case t.State == "skipped":
			s.Skipped++
			s.Skips[n] = "skipped by the test itself (not an allowed skip: a cairn bug to look at): " + t.Message
		default:
			s.Failed++
			s.Failures = append(s.Failures, n)
		}
		s.Seconds += t.Seconds
	}
	return s
}

// print writes the summary; its last line is `N passed, N failed, N
// skipped`, alone.
func (s summary) print(w io.Writer, r *resultsFile) {
	if len(s.Skips) > 0 {
		fmt.Fprintf(w, "conformance: skipped, with the reason:\n")
		for _, n := range sortedKeys(s.Skips) {
			fmt.Fprintf(w, "  %s\n      %s\n", n, s.Skips[n])
		}
	}
	if len(s.Failures) > 0 {
		fmt.Fprintf(w, "conformance: failed:\n")
		for _, n := range s.Failures {
			fmt.Fprintf(w, "  %s\n      %s\n", n, firstLine(r.Tests[n].Message, 300))
		}
	}
	if len(s.NotRun) > 0 {
		fmt.Fprintf(w, "conformance: %d of the %d tests have not run yet (-resume runs them)\n", len(s.NotRun), s.Total)
	}
	pct := 0.0
	if s.Total > 0 {
		pct = 100 * float64(s.Passed) / float64(s.Total)
	}
	fmt.Fprintf(w, "conformance: Kubernetes %s [Conformance]: %d tests, %.1f%% passed\n", r.Kubernetes, s.Total, pct)
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", s.Passed, s.Failed, s.Skipped)
}

func firstLine(s string, max int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// JUnit, the common subset CI systems read.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      float64     `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// writeJUnit writes every conformance test that ran or is skipped (not
// those not run yet) as one suite.
func writeJUnit(path string, names []string, r *resultsFile, s summary) error {
	suite := junitSuite{
		Name:      "Kubernetes " + r.Kubernetes + " [Conformance] on cairn",
		Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05"),
	}
	for _, n := range names {
		c := junitCase{Name: n, Classname: "conformance"}
		if why, ok := s.Skips[n]; ok {
			c.Skipped = &junitMessage{Message: why}
			suite.Skipped++
		} else if t, ok := r.Tests[n]; ok {
			c.Time = t.Seconds
			if !t.passed() {
				c.Failure = &junitFailure{Message: firstLine(t.Message, 1000), Type: t.State, Text: t.Message}
				suite.Failures++
			}
		} else {
			continue
		}
		suite.Tests++
		suite.Time += c.Time
		suite.Cases = append(suite.Cases, c)
	}
	doc := junitSuites{Tests: suite.Tests, Failures: suite.Failures, Skipped: suite.Skipped, Time: suite.Time, Suites: []junitSuite{suite}}
	data, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(data, '\n')...), 0o644)
}
