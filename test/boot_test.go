//go:build qemu

package test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/cairn-os/cairn/qemu"
)

// The boot tests are what `make test` (and CI) runs: one image per
// architecture, built with a baked-in config, booted once on QEMU's user
// network and powered off with the power button.

func TestBootX86_64(t *testing.T) { testBoot(t, "qemu-x86_64", "amd64") }

func TestBootArm64(t *testing.T) { testBoot(t, "qemu-arm64", "arm64") }

func testBoot(t *testing.T, board, arch string) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cfg := writeFile(t, "config.yaml", "#cloud-config\nhostname: cairn-boot\n")
	dir := image(t, board, "-config", cfg)
	m := boot(t, ctx, board, dir, qemu.Config{})

	start := waitFor(t, ctx, m, bootTimeout, reInitStarting)
	if got := reInitStarting.FindStringSubmatch(start.Text)[1]; got != arch {
		t.Errorf("init says it runs on %s, want %s: %q", got, arch, start.Text)
	}
	loaded := waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
	if !regexp.MustCompile(`/etc/cairn/config\.yaml`).MatchString(loaded.Text) {
		t.Errorf("config line %q does not name the baked-in /etc/cairn/config.yaml", loaded.Text)
	}
	up := waitFor(t, ctx, m, stepTimeout, reNetworkUp)
	if got := reNetworkUp.FindStringSubmatch(up.Text); got[2] != qemu.UserNetAddr || got[3] != "dhcp" {
		t.Errorf("network line %q: want %s via dhcp from QEMU's user network", up.Text, qemu.UserNetAddr)
	}
	// The machine names itself and its addresses, whatever it runs.
	waitFor(t, ctx, m, stepTimeout, regexp.MustCompile(`init: this is cairn-boot at `+regexp.QuoteMeta(qemu.UserNetAddr)+` \(`+regexp.QuoteMeta(reNetworkUp.FindStringSubmatch(up.Text)[1])+`\)`))

	// Once the node says its network is up, one press of the power button
	// (ACPI on x86_64, gpio-keys on arm64) must power it off in order.
	pressed := time.Now()
	requested := regexp.MustCompile(`shutdown: poweroff requested by acpi button`)
	if err := m.Powerdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, m, stepTimeout, requested)
	waitFor(t, ctx, m, stepTimeout, reAllStopped)
	exitCtx, cancelExit := context.WithTimeout(ctx, stepTimeout)
	defer cancelExit()
	if err := m.Wait(exitCtx); err != nil {
		t.Fatalf("after the power button: %v", err)
	}
	if n := m.Count(reInitStarting); n != 1 {
		t.Errorf("the init started %d times, want once", n)
	}
	t.Logf("figures: %s: init starting %s, config loaded %s, network up %s after QEMU start (guest clock at config loaded %s); power button to QEMU exit %s",
		board, secs(start.At), secs(loaded.At), secs(up.At), secs(guestClock(loaded)), secs(time.Since(pressed)))
}
