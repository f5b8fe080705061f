package dceoverlay

import (
	"bytes"
	"encoding/json"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestTemplateNames(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // file name -> content; .go files are Go
		embed []string
		main  bool     // a package of the main module
		imp   []string // its imports
		want  []string
	}{
		{
			name:  "raw string template",
			files: map[string]string{"a.go": "package a\nconst usage = `{{if .Runnable}}{{.UseLine}}{{end}}`\n"},
			want:  []string{"Runnable", "UseLine"},
		},
		{
			name:  "chains, variables, concatenation, escapes",
			files: map[string]string{"a.go": "package a\nvar s = \"{{$c.Parent.Name}}\" +\n\t\"{{.Flags\\x2eFlagUsages}}\"\n"},
			want:  []string{"FlagUsages", "Flags", "Name", "Parent"},
		},
		{
			name:  "only literals with a delimiter",
			files: map[string]string{"a.go": "package a\nconst (\n\tkind = \"k8s.io/api/core/v1.Pod\"\n\tt = \"{{if\" + \" .Ready}}\"\n)\n"},
			want:  []string{"Ready"},
		},
		{
			name:  "not from comments, code or unexported names",
			files: map[string]string{"a.go": "package a\n// {{.InComment}}\nvar x = os.Args\nconst t = \"{{.lower}} {{.Upper_1}}\"\n"},
			want:  []string{"Upper_1"},
		},
		{
			name:  "reflect's own lookups left out",
			files: map[string]string{"a.go": "package a\nconst t = \"{{.Method}} {{.MethodByName}} {{.Methods}} {{.MethodSet}}\"\n"},
			want:  []string{"MethodSet"},
		},
		{
			name:  "the main module's packages without templates are not read",
			files: map[string]string{"a.go": "package a\nconst t = \"{{.Mine}}\"\n"},
			main:  true,
			imp:   []string{"fmt"},
		},
		{
			name:  "the main module's packages with templates are read",
			files: map[string]string{"a.go": "package a\nconst t = \"{{.Mine}}\"\n"},
			main:  true,
			imp:   []string{"fmt", "html/template"},
			want:  []string{"Mine"},
		},
		{
			name:  "embedded text files, not binary ones",
			files: map[string]string{"a.go": "package a\n", "t.tmpl": "{{ .Description }}", "b.bin": "\x00{{.Binary}}"},
			embed: []string{"t.tmpl", "b.bin"},
			want:  []string{"Description"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := Package{ImportPath: "example.com/a", Dir: dir, EmbedFiles: tt.embed, Imports: tt.imp,
				Module: &Module{Path: "example.com", Main: tt.main}}
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				if strings.HasSuffix(name, ".go") {
					p.GoFiles = append(p.GoFiles, name)
				}
			}
			got, err := TemplateNames([]Package{p})
			if err != nil {
				t.Fatal(err)
			}
			if (len(got) != 0 || len(tt.want) != 0) && !slices.Equal(got, tt.want) {
				t.Errorf("TemplateNames = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMethodsSourceIsFormattedGo(t *testing.T) {
	src := MethodsSource([]string{"CommandPath", "UseLine"})
	formatted, err := format.Source(src)
	if err != nil {
		t.Fatalf("generated source does not parse: %v\n%s", err, src)
	}
	if !bytes.Equal(formatted, src) {
		t.Errorf("generated source is not gofmt'd:\n%s", src)
	}
	if !bytes.Contains(src, []byte(`case "UseLine":
		return v.MethodByName("UseLine")`)) {
		t.Errorf("no constant lookup of UseLine in:\n%s", src)
	}
}

// upstreamFile reads the file name of the package pkg as the module cache
// has it.
func upstreamFile(t *testing.T, pkg, name string) (string, []byte) {
	t.Helper()
	file := filepath.Join(goList(t, ".", pkg).Dir, name)
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return file, src
}

// goList returns `go list -json` of one package.
func goList(t *testing.T, dir string, args ...string) Package {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Dir,GoFiles,EmbedFiles,Module"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	var p Package
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGoCmpName changes the pinned go-cmp's name.go: no reflect.Type.Method
// left in it, and the rest of the file as it was.
func TestGoCmpName(t *testing.T) {
	file, src := upstreamFile(t, goCmpValue, "name.go")
	out, err := GoCmpName(file, src)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(".Method(")) {
		t.Errorf("name.go still calls Method:\n%s", out)
	}
	if !bytes.Contains(out, []byte(goCmpInterface)) {
		t.Errorf("name.go lacks the new interface case:\n%s", out)
	}
	if _, err := format.Source(out); err != nil {
		t.Errorf("name.go does not parse: %v", err)
	}
	// Everything before the interface case is untouched.
	head := src[:bytes.Index(src, []byte("case reflect.Interface:"))]
	if !bytes.HasPrefix(out, head) {
		t.Error("name.go changed before the interface case")
	}
	if _, err := GoCmpName("x.go", []byte("package value\nfunc appendTypeName() {}\n")); err == nil {
		t.Error("a name.go without the interface case was accepted")
	}
}

// TestTemplateOverlay builds a program with the changed text/template: a
// method whose name is in the list is called, one whose name is not is
// reported as a missing field, as for a struct without it.
func TestTemplateOverlay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	tt := goList(t, ".", "text/template")
	dir := t.TempDir()
	repl, err := templateOverlay(filepath.Join(dir, "gen"), tt, []string{"Known"})
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(struct{ Replace map[string]string }{repl})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":       "module example.com/tmpl\n\ngo 1.26\n",
		"overlay.json": string(js),
		"main.go": `package main

import (
	"fmt"
	"os"
	"text/template"
)

type T struct{}

func (T) Known() string   { return "known" }
func (T) Unknown() string { return "unknown" }

func main() {
	for _, s := range os.Args[1:] {
		err := template.Must(template.New("t").Parse(s)).Execute(os.Stdout, T{})
		fmt.Println()
		if err != nil {
			fmt.Println("error:", err)
		}
	}
}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "tmpl")
	build := exec.Command("go", "build", "-overlay", filepath.Join(dir, "overlay.json"), "-o", exe, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build with the overlay: %v\n%s", err, out)
	}
	out, err := exec.Command(exe, "{{.Known}}", "{{.Unknown}}").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "known\n\nerror: template: t:1:2: executing \"t\" at <.Unknown>: can't evaluate field Unknown in type main.T\n"
	if string(out) != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

func TestWriteOutsideModule(t *testing.T) {
	if _, err := Write(t.TempDir(), t.TempDir(), nil, nil, nil, Options{}); err == nil {
		t.Error("Write accepted a directory outside the module root")
	}
}

func TestKineInit(t *testing.T) {
	file, src := upstreamFile(t, kineEndpoint, "init.go")
	out, err := KineInit(file, src, []string{"pgsql", "mysql", "sqlite"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := format.Source(out); err != nil {
		t.Fatalf("init.go does not parse: %v\n%s", err, out)
	}
	for _, d := range []string{"pgsql", "mysql", "sqlite"} {
		if !bytes.Contains(out, []byte(`_ "`+kineDrivers+d+`"`)) {
			t.Errorf("driver %s left out:\n%s", d, out)
		}
	}
	for _, d := range []string{"nats", "t4"} {
		if bytes.Contains(out, []byte(`_ "`+kineDrivers+d+`"`)) {
			t.Errorf("driver %s still imported:\n%s", d, out)
		}
	}
	if _, err := KineInit(file, src, []string{"pgsql", "oracle"}); err == nil || !strings.Contains(err.Error(), `no driver "oracle"`) {
		t.Errorf("an unknown driver: err = %v", err)
	}
	if _, err := KineInit(file, []byte("package endpoint\nimport \"fmt\"\n"), nil); err == nil {
		t.Error("an import that is not a driver was accepted")
	}
}

func TestKineRevision(t *testing.T) {
	file, src := upstreamFile(t, "github.com/k3s-io/kine/pkg/logstructured/sqllog", "sql.go")
	out, err := KineRevision(file, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := format.Source(out); err != nil {
		t.Fatalf("sql.go does not parse: %v", err)
	}
	if n := bytes.Count(out, []byte("cairnRaiseRevision(&s.currentRev, rev)")); n != 2 {
		t.Errorf("the cached revision is raised in %d places, want the poll loop's and the write's", n)
	}
	if bytes.Contains(out, []byte("s.currentRev.CompareAndSwap(pollRevision")) || bytes.Contains(out, []byte("\tcurrentRev := s.currentRev.Load()\n")) {
		t.Error("kine's compare-and-swap from a stale value is still there")
	}
	if _, err := KineRevision(file, []byte("package sqllog\n")); err == nil {
		t.Error("a sql.go without kine's swaps was accepted")
	}
}

func TestWorkqueuePeriod(t *testing.T) {
	file, src := upstreamFile(t, workqueuePkg, "queue.go")
	out, err := WorkqueuePeriod(file, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := format.Source(out); err != nil {
		t.Fatalf("queue.go does not parse: %v", err)
	}
	if !bytes.Contains(out, []byte(workqueuePeriodCairn+"\n")) || bytes.Contains(out, []byte(workqueuePeriod)) {
		t.Error("the unfinished-work period is still upstream's")
	}
	if _, err := WorkqueuePeriod(file, []byte("package workqueue\n")); err == nil {
		t.Error("a queue.go without the period was accepted")
	}
}

func TestDropReplace(t *testing.T) {
	goMod := []byte("module m\n\ngo 1.26\n\nreplace (\n\tk8s.io/api => k8s.io/api v0.36.3\n\tk8s.io/client-go => k8s.io/client-go v0.36.3\n)\n\n// Written by a tool.\nreplace example.com/x => ./x\n")
	out, err := dropReplace(goMod, "k8s.io/client-go")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("k8s.io/client-go")) {
		t.Errorf("client-go's replace is still there:\n%s", out)
	}
	for _, keep := range []string{"k8s.io/api => k8s.io/api v0.36.3", "example.com/x => ./x", "// Written by a tool."} {
		if !bytes.Contains(out, []byte(keep)) {
			t.Errorf("%q was lost:\n%s", keep, out)
		}
	}
	same, err := dropReplace(goMod, "k8s.io/kubelet")
	if err != nil || !bytes.Equal(same, goMod) {
		t.Errorf("a go.mod without the module's replace was changed (%v):\n%s", err, same)
	}
}

func TestCacherBookmarks(t *testing.T) {
	file, src := upstreamFile(t, cacherPkg, "cacher.go")
	out, err := CacherBookmarks(file, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := format.Source(out); err != nil {
		t.Fatalf("cacher.go does not parse: %v", err)
	}
	if bytes.Contains(out, []byte("bookmarkTimer.Reset(wait.Jitter(time.Second, 0.25))")) {
		t.Error("the bookmark loop still ticks every second")
	}
	if _, err := CacherBookmarks(file, []byte("package cacher\n")); err == nil {
		t.Error("a cacher.go without the bookmark loop was accepted")
	}
}

// TestCacherBookmarksUpstream runs the watch cache's own tests of bookmarks
// and watches on the changed copy: a bookmark that comes late or never, or
// a watch-list that never ends its initial events, fails them. About three
// minutes (it builds the apiserver's tests); not with -short.
func TestCacherBookmarksUpstream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the apiserver's watch cache tests (minutes)")
	}
	p := goList(t, ".", cacherPkg)
	dir := filepath.Join(t.TempDir(), "apiserver")
	if err := copyModule(p.Module.Dir, dir, map[string]edit{cacherFile: CacherBookmarks}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "test", "-count=1", "-timeout=10m", "-run", "Bookmark|WatchList|Watch", "./pkg/storage/cacher/")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the watch cache's tests fail on the changed copy: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}
