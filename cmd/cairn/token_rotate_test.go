package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/join/jointest"
)

// rotateBed is a fake cluster of servers s1 and s2 and an admin
// kubeconfig file for it; cairn token rotate reaches the fake's port.
func rotateBed(t *testing.T) (*jointest.Cluster, string) {
	t.Helper()
	c := jointest.NewCluster(t, "s1", "s2")
	old := rotatePort
	rotatePort = c.Port
	t.Cleanup(func() { rotatePort = old })
	kc := filepath.Join(t.TempDir(), "admin.conf")
	if err := os.WriteFile(kc, c.Kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return c, kc
}

// TestTokenRotate: without --new-token, cairn makes the token, prints it
// once on standard output and sends it to every server; standard error
// says which servers confirmed and what to do next.
func TestTokenRotate(t *testing.T) {
	c, kc := rotateBed(t)
	code, stdout, stderr := runCairn(t, "", "token", "rotate", "--kubeconfig", kc)
	tok := strings.TrimSpace(stdout)
	if code != 0 || join.Strength(tok) < join.MinStrength || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("cairn token rotate: exit %d, stdout %q, stderr:\n%s\nwant 0 and one strong token", code, stdout, stderr)
	}
	if c.Sealed(join.RoleServer) != tok {
		t.Error("the servers got another token than the one printed")
	}
	for _, want := range []string{
		"cairn token rotate: s1 (127.0.0.1): confirmed: re-sealed the cluster record with the new server token; bootstrap token ",
		"cairn token rotate: s2 (127.0.0.2): confirmed: the cluster record, re-sealed already, opens with the new server token",
		"cairn token rotate: the server token is rotated on 2 of 2 servers (s1, s2). Put the new token in kubernetes.token in every server's config",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, tok) {
		t.Error("standard error shows the token")
	}

	// --agent --new-token FILE: the file's token, nothing on stdout.
	file := filepath.Join(t.TempDir(), "agent-token")
	agentTok, _ := join.Generate()
	os.WriteFile(file, []byte(agentTok+"\n"), 0o600)
	code, stdout, stderr = runCairn(t, "", "token", "rotate", "--agent", "--new-token", file, "--kubeconfig", kc)
	if code != 0 || stdout != "" || c.Sealed(join.RoleAgent) != agentTok || !strings.Contains(stderr, "the agent token is rotated on 2 of 2 servers (s1, s2)") {
		t.Errorf("cairn token rotate --agent --new-token FILE: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	// Again, the same token: idempotent, confirmed by both.
	code, _, stderr = runCairn(t, "", "token", "rotate", "--agent", "--new-token", file, "--kubeconfig", kc)
	if code != 0 || !strings.Contains(stderr, "s1 (127.0.0.1): confirmed: the cluster record names the new agent token already") {
		t.Errorf("the same rotation again: exit %d, stderr:\n%s", code, stderr)
	}

	// From stdin, to -o: -o is only for a token cairn makes.
	newTok, _ := join.Generate()
	code, _, stderr = runCairn(t, newTok+"\n", "token", "rotate", "--new-token", "-", "--kubeconfig", kc)
	if code != 0 || c.Sealed(join.RoleServer) != newTok {
		t.Errorf("--new-token -: exit %d, stderr:\n%s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "made")
	code, stdout, stderr = runCairn(t, "", "token", "rotate", "-o", out, "--kubeconfig", kc)
	data, _ := os.ReadFile(out)
	fi, err := os.Stat(out)
	if code != 0 || stdout != "" || err != nil || fi.Mode().Perm() != 0o600 || c.Sealed(join.RoleServer) != strings.TrimSpace(string(data)) ||
		!strings.Contains(stderr, "the new server token is in "+out+" (mode 0600)") {
		t.Errorf("-o FILE: exit %d, stdout %q, file %v %v, stderr:\n%s", code, stdout, fi, err, stderr)
	}
}

// TestTokenRotateRefused: a weak token, a token file others may read,
// -o with --new-token, a stranger's kubeconfig: refused, the token never
// shown, nothing sent.
func TestTokenRotateRefused(t *testing.T) {
	c, kc := rotateBed(t)
	dir := t.TempDir()
	weak := filepath.Join(dir, "weak")
	os.WriteFile(weak, []byte("Winter2026!\n"), 0o600)
	open := filepath.Join(dir, "open")
	good, _ := join.Generate()
	os.WriteFile(open, []byte(good), 0o644)
	fine := filepath.Join(dir, "fine")
	other, _ := join.Generate()
	os.WriteFile(fine, []byte(other), 0o600)
	t.Setenv("KUBECONFIG", "")
	stranger := filepath.Join(dir, "stranger.conf")
	os.WriteFile(stranger, c.Stranger, 0o600)
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"a weak token", "", []string{"--new-token", weak}, 1, "the new token is too weak: about 72 bits"},
		{"a weak token on stdin", "Winter2026!", []string{"--new-token", "-"}, 1, "too weak"},
		{"a file others read", "", []string{"--new-token", open}, 1, "may be read by others (mode 0644)"},
		{"-o with --new-token", "", []string{"--new-token", weak, "-o", filepath.Join(dir, "x")}, 2, "-o writes a token cairn makes"},
		{"no kubeconfig", "", []string{"--new-token", fine, "--kubeconfig", ""}, 2, "--kubeconfig is required"},
		{"a stranger's kubeconfig", "", []string{"--kubeconfig", stranger}, 1, "listing the servers"},
	} {
		args := append([]string{"token", "rotate", "--kubeconfig", kc}, tt.args...)
		code, stdout, stderr := runCairn(t, tt.stdin, args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d saying %q", tt.name, code, stderr, tt.code, tt.want)
		}
		if strings.Contains(stdout+stderr, "Winter2026!") || strings.Contains(stdout+stderr, good) {
			t.Errorf("%s: the output shows the token", tt.name)
		}
	}
	if c.Asked() != 0 || c.Sealed(join.RoleServer) != "" {
		t.Errorf("%d requests reached a server; want none", c.Asked())
	}
}

// TestTokenRotatePartly: a server that does not answer is named, the
// others confirmed, and the way to finish is to run the same rotation
// again with the same token.
func TestTokenRotatePartly(t *testing.T) {
	c, kc := rotateBed(t)
	c.Down("s2")
	file := filepath.Join(t.TempDir(), "new")
	tok, _ := join.Generate()
	os.WriteFile(file, []byte(tok), 0o600)
	code, _, stderr := runCairn(t, "", "token", "rotate", "--new-token", file, "--kubeconfig", kc)
	for _, want := range []string{
		"cairn token rotate: s1 (127.0.0.1): confirmed: ",
		"cairn token rotate: s2 (127.0.0.2): not rotated: reaching 127.0.0.2:",
		"the server token is rotated on 1 of 2 servers (s1), not on s2. To finish, run the same rotation again once they answer (it is idempotent): cairn token rotate --new-token FILE.",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code != 1 || strings.Contains(stderr, tok) {
		t.Errorf("exit %d (want 1); token shown: %v", code, strings.Contains(stderr, tok))
	}
	// An apiserver without a Node is reported too.
	c2, kc2 := rotateBed(t)
	c2.Apiservers = 3
	code, _, stderr = runCairn(t, "", "token", "rotate", "--new-token", file, "--kubeconfig", kc2)
	if code != 1 || !strings.Contains(stderr, "3 apiservers run but only 2 servers have a Node") {
		t.Errorf("an apiserver without a Node: exit %d, stderr:\n%s", code, stderr)
	}
}
