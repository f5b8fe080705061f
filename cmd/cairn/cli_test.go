package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/boards"
)

// runCairn runs cairn with args as main would and returns its exit status,
// standard output and standard error.
func runCairn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := execute(args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// checkGolden compares got with testdata/NAME, or rewrites it with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/cairn -update)", err)
	}
	if got != string(want) {
		t.Errorf("got:\n%s\nwant (%s; after adding a command, run go test ./cmd/cairn -update and read the diff):\n%s", got, file, want)
	}
}

// TestHelp checks that 'cairn help' and 'cairn -h' list every command and
// help topic, and that a bare 'cairn' prints the same to stderr as a usage
// error.
func TestHelp(t *testing.T) {
	code, help, stderr := runCairn(t, "", "help")
	if code != 0 || stderr != "" {
		t.Fatalf("cairn help: exit status %d, stderr %q; want 0 and nothing", code, stderr)
	}
	checkGolden(t, "help.golden", help)
	for _, c := range newRoot(nil, io.Discard, io.Discard).Commands() {
		if !strings.Contains(help, "\n  "+c.Name()+" ") && !strings.Contains(help, "\n  cairn "+c.Name()+" ") {
			t.Errorf("cairn help does not list %q", c.Name())
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}} {
		code, stdout, stderr := runCairn(t, "", args...)
		if code != 0 || stdout != help || stderr != "" {
			t.Errorf("cairn %s: exit status %d, stdout %q, stderr %q; want 0 and the help of 'cairn help'", args[0], code, stdout, stderr)
		}
	}
	code, stdout, stderr := runCairn(t, "")
	if code != 2 || stdout != "" || stderr != help {
		t.Errorf("cairn: exit status %d, stdout %q, stderr %q; want 2 and the help on stderr", code, stdout, stderr)
	}
}

func TestHelpTopics(t *testing.T) {
	code, stdout, _ := runCairn(t, "", "help", "exit-status")
	if code != 0 || !strings.Contains(stdout, "  2  usage error") || !strings.Contains(stdout, "  1  the command failed") {
		t.Errorf("cairn help exit-status: exit status %d, printed %q; want 0 and the meaning of 1 and 2", code, stdout)
	}
	code, stdout, _ = runCairn(t, "", "help", "build")
	if code != 0 || !strings.Contains(stdout, "cairn build --board BOARD") {
		t.Errorf("cairn help build: exit status %d, printed %q; want 0 and build's usage", code, stdout)
	}
}

// TestUsageErrors checks that what cobra would answer with a help page and
// exit status 0 is a usage error here.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"help", "nosuch"}, "cairn help: no command or help topic \"nosuch\"; 'cairn help' lists them\nRun 'cairn help --help' for usage.\n"},
		{[]string{"help", "build", "extra"}, "cairn help: no command or help topic \"build extra\"; 'cairn help' lists them\nRun 'cairn help --help' for usage.\n"},
		{[]string{"completion"}, "cairn completion: missing command: bash, fish, powershell, zsh\nRun 'cairn completion --help' for usage.\n"},
		{[]string{"completion", "tcsh"}, "cairn completion: unknown command \"tcsh\" for \"cairn completion\"\nRun 'cairn completion --help' for usage.\n"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCairn(t, "", tt.args...)
		if code != 2 || stdout != "" || stderr != tt.want {
			t.Errorf("cairn %s: exit status %d, stdout %q, stderr %q; want 2 and %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	code, stdout, stderr := runCairn(t, "", "biuld")
	want := "cairn: unknown command \"biuld\" for \"cairn\"\n\nDid you mean this?\n\tbuild\n\nRun 'cairn --help' for usage.\n"
	if code != 2 || stdout != "" || stderr != want {
		t.Errorf("cairn biuld: exit status %d, stdout %q, stderr %q; want 2 and %q", code, stdout, stderr, want)
	}
}

func TestBuildHelp(t *testing.T) {
	for _, args := range [][]string{{"build", "-h"}, {"build", "--help"}, {"build", "-help"}, {"help", "build"}} {
		code, stdout, stderr := runCairn(t, "", args...)
		if code != 0 || stderr != "" {
			t.Errorf("cairn %s: exit status %d, stderr %q; want 0 and nothing", strings.Join(args, " "), code, stderr)
		}
		for _, want := range append([]string{
			"Usage:\n  cairn build --board BOARD --kernel DEB|DIR --output DIR [flags]\n",
			"  -b, --board string ", "  -k, --kernel string ", "  -o, --output string ", "  -c, --config string ",
			"  -m, --module stringArray ", "      --components string ", "      --squashfs-level int ",
		}, boards.Names()...) {
			if !strings.Contains(stdout, want) {
				t.Errorf("cairn %s does not show %q:\n%s", strings.Join(args, " "), want, stdout)
			}
		}
	}
}

// TestCompletion loads each shell's completion script into the shell, where
// that shell is installed, and asks cairn for completions as the scripts do.
func TestCompletion(t *testing.T) {
	shells := []struct {
		name  string
		check []string // a command that loads the script from $1 and shows it took
		want  string
	}{
		{"bash", []string{"bash", "-c", "source \"$0\" && complete -p cairn"}, "complete -o default -F __start_cairn cairn"},
		{"zsh", []string{"zsh", "-n"}, ""},
		{"fish", []string{"fish", "--no-execute"}, ""},
	}
	for _, sh := range shells {
		t.Run(sh.name, func(t *testing.T) {
			code, script, stderr := runCairn(t, "", "completion", sh.name)
			if code != 0 || stderr != "" || !strings.Contains(script, "cairn") {
				t.Fatalf("cairn completion %s: exit status %d, stderr %q, script of %d bytes", sh.name, code, stderr, len(script))
			}
			if _, err := exec.LookPath(sh.check[0]); err != nil {
				t.Skipf("%s is not installed: the script is not loaded", sh.name)
			}
			file := filepath.Join(t.TempDir(), "cairn."+sh.name)
			if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sh.check[0], append(sh.check[1:], file)...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), sh.want) {
				t.Errorf("%s with the script: %v, printed %q, want %q", sh.name, err, out, sh.want)
			}
		})
	}

	completions := func(args ...string) []string {
		t.Helper()
		code, stdout, stderr := runCairn(t, "", append([]string{"__complete"}, args...)...)
		if code != 0 {
			t.Fatalf("cairn __complete %q: exit status %d, stderr %q", args, code, stderr)
		}
		var words []string
		for _, line := range strings.Split(stdout, "\n") {
			if line != "" && !strings.HasPrefix(line, ":") {
				words = append(words, strings.SplitN(line, "\t", 2)[0])
			}
		}
		return words
	}
	if got := completions("build", "--board", ""); !slices.Equal(got, boards.Names()) {
		t.Errorf("completions of cairn build --board: %q, want the boards %q", got, boards.Names())
	}
	got := completions("")
	for _, c := range []string{"build", "completion", "help", "inspect", "run", "validate", "version"} {
		if !slices.Contains(got, c) {
			t.Errorf("completions of cairn: %q, want %q among them", got, c)
		}
	}
	got = completions("help", "")
	for _, c := range []string{"build", "exit-status"} {
		if !slices.Contains(got, c) {
			t.Errorf("completions of cairn help: %q, want %q among them", got, c)
		}
	}
}

func TestLongFlags(t *testing.T) {
	tests := []struct{ args, want []string }{
		{[]string{"run", "-board", "b", "-smp", "2", "dir"}, []string{"run", "--board", "b", "--smp", "2", "dir"}},
		{[]string{"run", "-m", "512", "-log=x", "dir"}, []string{"run", "-m", "512", "--log=x", "dir"}},
		// A value is never rewritten, whatever it looks like.
		{[]string{"run", "-append", "-board", "dir"}, []string{"run", "--append", "-board", "dir"}},
		{[]string{"run", "dir", "--", "-board"}, []string{"run", "dir", "--", "-board"}},
		{[]string{"run", "-bogus", "-", "dir"}, []string{"run", "-bogus", "-", "dir"}},
	}
	for _, tt := range tests {
		cmd, _, err := newRoot(nil, io.Discard, io.Discard).Find(tt.args)
		if err != nil {
			t.Fatal(err)
		}
		if got := longFlags(cmd, tt.args); !slices.Equal(got, tt.want) {
			t.Errorf("longFlags(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}
