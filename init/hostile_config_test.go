package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
)

// TestContainerPlatformHostileConfig gives PID 1 a config built to exhaust
// the loader (4 MiB of tiny flow items): the init prints one line saying
// why the document is refused, applies nothing, stays up and reads its
// sources again.
func TestContainerPlatformHostileConfig(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the container platform needs root for its namespaces")
	}
	if testing.Short() {
		t.Skip("builds and runs the init")
	}
	bin := buildInit(t)
	root := t.TempDir()
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "etc/cairn"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	var doc strings.Builder
	doc.WriteString("#cloud-config\nhostname: hostile-1\nkubernetes:\n  tls-san: [a")
	for doc.Len() < config.MaxDocumentSize-4 {
		doc.WriteString(",a")
	}
	doc.WriteString("]\n")
	if err := os.WriteFile(filepath.Join(root, "etc/cairn/config.yaml"), []byte(doc.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-platform", "container", "-root", root)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var seen []string
	// configLines returns the config lines up to the next retry line.
	configLines := func() []string {
		t.Helper()
		var lines []string
		for sc.Scan() {
			l := sc.Text()
			seen = append(seen, l)
			if !strings.Contains(l, "] config: ") {
				continue
			}
			if strings.Contains(l, "config: invalid, nothing applied; retrying sources in") {
				return lines
			}
			lines = append(lines, l)
		}
		t.Fatalf("no retry line; the init printed:\n%s", strings.Join(seen, "\n"))
		return nil
	}
	refused := regexp.MustCompile(`^cairn: \[\d{5,}\.\d{3}\] config: /etc/cairn/config\.yaml:4:\d+: error: document has more than \d+ of the characters that start YAML values .* cairn refuses it unparsed: check that this is the right file`)
	for attempt := 1; attempt <= 2; attempt++ {
		lines := configLines()
		if len(lines) != 1 || !refused.MatchString(lines[0]) {
			t.Fatalf("attempt %d: want one line refusing the document, got %d:\n%s", attempt, len(lines), strings.Join(lines, "\n"))
		}
	}
	node := nodePID(t, cmd.Process.Pid)
	if _, err := os.Stat(filepath.Join("/proc", node)); err != nil {
		t.Fatalf("the node's PID 1 is gone: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join("/proc", node, "root/etc/hostname")); strings.Contains(string(got), "hostile-1") {
		t.Errorf("the hostname of a refused config was applied")
	}
}
