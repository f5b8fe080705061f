package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	podsTest    = "[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]"
	serialTest  = "[sig-apps] Daemon set [Serial] should run and stop simple daemon [Conformance]"
	dnsTest     = "[sig-network] DNS should provide DNS for services  [Conformance]"
	volumeTest  = "[sig-node] ImageVolume should succeed with pod and pull policy of Always [LinuxOnly] [MinimumKubeletVersion:1.35] [Conformance]"
	suffixOfPod = "[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance] again"
)

// e2e.test -list-tests prints an indent, FILE:LINE: and the full name.
func TestParseListTests(t *testing.T) {
	out := "The following spec names can be used with 'ginkgo run --focus/skip':\n" +
		"    test/e2e/common/node/pods.go:228: " + podsTest + "\n" +
		"    test/e2e/apps/daemon_set.go:180: " + serialTest + "\n" +
		"\n"
	got := parseListTests([]byte(out))
	if len(got) != 2 || !got[podsTest] || !got[serialTest] {
		t.Errorf("parseListTests = %v, want the two names", got)
	}
}

func TestPlan(t *testing.T) {
	names := []string{dnsTest, podsTest, serialTest, volumeTest}
	for _, tc := range []struct {
		name             string
		focus            string
		passed           map[string]bool
		parallel, serial []string
	}{
		{"all", "", nil, []string{dnsTest, podsTest}, []string{serialTest}},
		{"focus", "DNS", nil, []string{dnsTest}, nil},
		{"focus on a skip runs nothing", "ImageVolume", nil, nil, nil},
		{"resume", "", map[string]bool{podsTest: true, serialTest: true}, []string{dnsTest}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var focus *regexp.Regexp
			if tc.focus != "" {
				focus = regexp.MustCompile(tc.focus)
			}
			p, s := plan(names, focus, tc.passed)
			if !slices.Equal(p, tc.parallel) || !slices.Equal(s, tc.serial) {
				t.Errorf("plan = %q then %q, want %q then %q", p, s, tc.parallel, tc.serial)
			}
		})
	}
}

// ginkgo matches --focus against "Kubernetes e2e suite " + the full name.
func TestFocusRegexpMatchesOneSpec(t *testing.T) {
	re := regexp.MustCompile(focusRegexp(podsTest))
	for text, want := range map[string]bool{
		"Kubernetes e2e suite " + podsTest:          true,
		"Kubernetes e2e suite " + suffixOfPod:       false,
		"Kubernetes e2e suite [sig-x] " + podsTest:  false,
		"Kubernetes e2e suite " + dnsTest:           false,
		"Kubernetes e2e suite " + podsTest + " [x]": false,
	} {
		if got := re.MatchString(text); got != want {
			t.Errorf("%q matches %q: %v, want %v", re, text, got, want)
		}
	}
}

func TestSummaryAndJUnit(t *testing.T) {
	names := []string{dnsTest, podsTest, serialTest, volumeTest}
	r := &resultsFile{Kubernetes: "v1.36.3", Tests: map[string]testResult{
		podsTest:   {State: "passed", Seconds: 3},
		serialTest: {State: "failed", Seconds: 60, Message: "timed out waiting for the daemon pods\nmore"},
	}}
	s := summarize(names, r)
	var out bytes.Buffer
	s.print(&out, r)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; last != "1 passed, 1 failed, 1 skipped" {
		t.Errorf("last line %q, want the plain count\n%s", last, out.String())
	}
	for _, want := range []string{volumeTest, "Alpine Linux", "timed out waiting for the daemon pods", "1 of the 4 tests have not run yet"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := writeJUnit(path, names, r, s); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("JUnit does not parse: %v\n%s", err, data)
	}
	if doc.Tests != 3 || doc.Failures != 1 || doc.Skipped != 1 || len(doc.Suites[0].Cases) != 3 {
		t.Errorf("JUnit counts tests=%d failures=%d skipped=%d cases=%d, want 3 1 1 3", doc.Tests, doc.Failures, doc.Skipped, len(doc.Suites[0].Cases))
	}
}

func TestReadGinkgoReport(t *testing.T) {
	report := `[{"SpecReports":[
	 {"ContainerHierarchyTexts":["[sig-node] Pods"],"LeafNodeType":"It","LeafNodeText":"should be submitted and removed [NodeConformance] [Conformance]","State":"passed","RunTime":3000000000},
	 {"ContainerHierarchyTexts":["[sig-network] DNS"],"LeafNodeType":"It","LeafNodeText":"should provide DNS for services  [Conformance]","State":"failed","RunTime":1000000000,"Failure":{"Message":"dig found nothing"}},
	 {"ContainerHierarchyTexts":["[sig-apps] Daemon set [Serial]"],"LeafNodeType":"It","LeafNodeText":"should run and stop simple daemon [Conformance]","State":"skipped"},
	 {"LeafNodeType":"SynchronizedBeforeSuite","State":"passed"}]}]`
	path := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readGinkgoReport(path, []string{podsTest, dnsTest, serialTest})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[podsTest].State != "passed" || got[podsTest].Seconds != 3 || got[dnsTest].Message != "dig found nothing" {
		t.Errorf("readGinkgoReport = %+v", got)
	}
}

func TestProgressCountsEachTestOnce(t *testing.T) {
	var out bytes.Buffer
	p := &progress{total: 2, start: time.Now(), w: &out, done: map[string]string{}, want: map[string]bool{podsTest: true, dnsTest: true}, phase: "parallel"}
	p.finished("passed", podsTest)
	p.finished("passed", podsTest) // a second report of the same spec
	p.finished("passed", "[sig-x] not ours")
	p.finished("failed", dnsTest)
	want := []string{"[parallel 1/2, 0:00:00] passed " + podsTest, "[parallel 2/2, 0:00:00] failed " + dnsTest}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("progress printed %q", lines)
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, want[i]) {
			t.Errorf("line %d: %q, want ...%q", i, l, want[i])
		}
	}
}

// The archive is what ctr images import reads: index.json names the
// image, the blobs match their digests, the layer keeps modes, setuid and
// links with root as the owner, and the same tree gives the same bytes.
func TestWriteImageArchive(t *testing.T) {
	tree := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(tree, "usr/local/bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "usr/local/bin/nnp"), []byte("\x7fELF..."), 0o755))
	must(t, os.Chmod(filepath.Join(tree, "usr/local/bin/nnp"), 0o755|os.ModeSetuid))
	must(t, os.WriteFile(filepath.Join(tree, "agnhost"), []byte("agnhost"), 0o755))
	must(t, os.Symlink("agnhost", filepath.Join(tree, "agnhost-2")))
	cfg := imageConfig{Names: []string{"cairn.local/e2e-test-images/agnhost:2.63.0"}, Arch: "amd64",
		Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}}
	a, b := filepath.Join(t.TempDir(), "a.tar"), filepath.Join(t.TempDir(), "b.tar")
	must(t, writeImageArchive(tree, cfg, a))
	must(t, writeImageArchive(tree, cfg, b))
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Error("two archives of the same tree differ")
	}

	files := readTar(t, bytes.NewReader(da))
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	must(t, json.Unmarshal(files["index.json"].data, &index))
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != cfg.Names[0] {
		t.Fatalf("index.json %s does not name %s", files["index.json"].data, cfg.Names[0])
	}
	for name, f := range files {
		if sum, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && sum != "" {
			h := sha256.Sum256(f.data)
			if hex.EncodeToString(h[:]) != sum {
				t.Errorf("blob %s has digest %x", name, h)
			}
		}
	}
	var man struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	must(t, json.Unmarshal(files[blobPath(index.Manifests[0])].data, &man))
	var conf struct {
		Config struct{ Entrypoint, Cmd []string }
	}
	must(t, json.Unmarshal(files[blobPath(man.Config)].data, &conf))
	if !slices.Equal(conf.Config.Entrypoint, cfg.Entrypoint) || !slices.Equal(conf.Config.Cmd, cfg.Cmd) {
		t.Errorf("config %s", files[blobPath(man.Config)].data)
	}
	layer := readTar(t, bytes.NewReader(files[blobPath(man.Layers[0])].data))
	nnp := layer["usr/local/bin/nnp"].hdr
	if nnp == nil || nnp.Mode&0o4000 == 0 || nnp.Uid != 0 || nnp.Uname != "" {
		t.Errorf("nnp in the layer: %+v, want setuid and owned by root", nnp)
	}
	if l := layer["agnhost-2"].hdr; l == nil || l.Typeflag != tar.TypeSymlink || l.Linkname != "agnhost" {
		t.Errorf("agnhost-2 in the layer: %+v, want a link to agnhost", l)
	}
	if d := layer["usr/local/"].hdr; d == nil || d.Typeflag != tar.TypeDir {
		t.Errorf("usr/local/ in the layer: %+v, want a directory", d)
	}
}

type tarFile struct {
	hdr  *tar.Header
	data []byte
}

func readTar(t *testing.T, r io.Reader) map[string]tarFile {
	t.Helper()
	files := map[string]tarFile{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = tarFile{h, data}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The KUBE_TEST_REPO_LIST file names every registry key of the suite's
// manifest.go once; every image is under one of them.
func TestRepoList(t *testing.T) {
	text := repoList()
	for _, r := range localRegistries {
		if strings.Count(text, "\n"+r.Key+": ") != 1 {
			t.Errorf("repo list names %s %d times:\n%s", r.Key, strings.Count(text, "\n"+r.Key+": "), text)
		}
	}
	for _, s := range testImages() {
		if !strings.HasPrefix(s.ref(), "cairn.local/") {
			t.Errorf("image %s is not under cairn.local", s.ref())
		}
	}
}
