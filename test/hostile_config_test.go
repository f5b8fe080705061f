//go:build qemu

package test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/qemu"
)

// TestHostileSeed boots with a hostile user-data on a NoCloud seed: 4 MiB
// of tiny flow items, which before the loader's budget took seconds and
// gigabytes. The node stays up, prints one line saying why the document is
// refused, applies nothing and reads its sources again. One architecture
// is enough: the loader is the same Go code on both.
func TestHostileSeed(t *testing.T) {
	ab := archBoards[1] // arm64: the faster boot under TCG
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var doc strings.Builder
	doc.WriteString("#cloud-config\nhostname: hostile-1\nkubernetes:\n  tls-san: [a")
	for doc.Len() < config.MaxDocumentSize-4 {
		doc.WriteString(",a")
	}
	doc.WriteString("]\n")
	seed := filepath.Join(t.TempDir(), "seed.iso")
	if err := qemu.MakeSeedISO(ctx, seed, qemu.Seed{UserData: []byte(doc.String())}); err != nil {
		t.Fatal(err)
	}

	m := boot(t, ctx, ab.board, image(t, ab.board), qemu.Config{Seed: seed})
	waitFor(t, ctx, m, bootTimeout, reInitStarting)
	retry := regexp.MustCompile(`cairn: \[\d+\.\d+\] config: invalid, nothing applied; retrying sources in (\S+)`)
	first := waitFor(t, ctx, m, stepTimeout, retry)
	refused := regexp.MustCompile(`cairn: \[\d+\.\d+\] config: cidata:/dev/vd[a-z]+/user-data:4:\d+: error: document has more than \d+ of the characters that start YAML values .* cairn refuses it unparsed`)
	var configLines []string
	for _, l := range m.Lines() {
		if l.Text == first.Text {
			break
		}
		if strings.Contains(l.Text, "] config: ") {
			configLines = append(configLines, l.Text)
		}
	}
	if len(configLines) != 1 || !refused.MatchString(configLines[0]) {
		t.Fatalf("want one config line refusing the document before %q, got:\n%s", first.Text, strings.Join(configLines, "\n"))
	}
	// It reads its sources again, and is still the same boot.
	again := waitForNext(t, ctx, m, stepTimeout, retry)
	if m.Exited() {
		t.Fatal("QEMU exited")
	}
	if n := m.Count(reInitStarting); n != 1 {
		t.Errorf("the init started %d times, want once (no reboot)", n)
	}
	if l, ok := findLine(m, reConfigLoaded); ok {
		t.Errorf("a config was loaded: %q", l)
	}
	t.Logf("figures: %s: refused at guest clock %s, retried at %s", ab.board, secs(guestClock(first)), secs(guestClock(again)))
}
