//go:build qemu

package test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/qemu"
)

// TestConfigSources boots each architecture once per config source and checks
// that the init names the source it loaded.
func TestConfigSources(t *testing.T) {
	userData := func(host string) []byte { return []byte("#cloud-config\nhostname: " + host + "\n") }
	metaData := []byte("instance-id: cairn-e2e\nlocal-hostname: from-meta-data\n")
	sources := []struct {
		name string
		// setup returns the image, how to boot it and the source the
		// config line must name.
		setup func(t *testing.T, ctx context.Context, board string) (dir string, cfg qemu.Config, source *regexp.Regexp)
	}{
		{"seed-iso (cloud-localds)", func(t *testing.T, ctx context.Context, board string) (string, qemu.Config, *regexp.Regexp) {
			seed := filepath.Join(t.TempDir(), "seed.iso")
			if err := qemu.MakeSeedISO(ctx, seed, qemu.Seed{UserData: userData("from-iso"), MetaData: metaData}); err != nil {
				t.Fatal(err)
			}
			return image(t, board), qemu.Config{Seed: seed}, regexp.MustCompile(`cidata:/dev/vd[a-z]+/user-data`)
		}},
		{"seed-vfat (mkfs.vfat -n cidata)", func(t *testing.T, ctx context.Context, board string) (string, qemu.Config, *regexp.Regexp) {
			seed := filepath.Join(t.TempDir(), "seed.img")
			if err := qemu.MakeSeedVFAT(ctx, seed, qemu.Seed{UserData: userData("from-vfat"), MetaData: metaData}); err != nil {
				t.Fatal(err)
			}
			return image(t, board), qemu.Config{Seed: seed}, regexp.MustCompile(`cidata:/dev/vd[a-z]+/user-data`)
		}},
		{"cairn.config URL", func(t *testing.T, ctx context.Context, board string) (string, qemu.Config, *regexp.Regexp) {
			srv := serveConfig(t)
			srv.set("/node/config.yaml", userData("from-url"))
			url := srv.url("/node/config.yaml")
			return image(t, board), qemu.Config{ExtraCmdline: []string{"cairn.config=" + url}}, regexp.MustCompile(regexp.QuoteMeta(url))
		}},
		{"ds=nocloud;s=URL", func(t *testing.T, ctx context.Context, board string) (string, qemu.Config, *regexp.Regexp) {
			srv := serveConfig(t)
			srv.set("/seed/meta-data", metaData)
			srv.set("/seed/user-data", userData("from-nocloud-net"))
			url := srv.url("/seed/")
			return image(t, board), qemu.Config{ExtraCmdline: []string{"ds=nocloud;s=" + url}}, regexp.MustCompile(regexp.QuoteMeta(url + "user-data"))
		}},
		{"baked in (cairn build -config)", func(t *testing.T, ctx context.Context, board string) (string, qemu.Config, *regexp.Regexp) {
			cfg := writeFile(t, "config.yaml", string(userData("from-image")))
			return image(t, board, "-config", cfg), qemu.Config{}, regexp.MustCompile(`/etc/cairn/config\.yaml`)
		}},
	}
	for _, ab := range archBoards {
		for _, src := range sources {
			t.Run(ab.arch+"/"+src.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				dir, cfg, source := src.setup(t, ctx, ab.board)
				m := boot(t, ctx, ab.board, dir, cfg)
				waitFor(t, ctx, m, bootTimeout, reInitStarting)
				loaded := waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
				if !source.MatchString(loaded.Text) {
					t.Errorf("config line %q does not name the source /%s/", loaded.Text, source)
				}
				up := waitFor(t, ctx, m, stepTimeout, reNetworkUp)
				if got := reNetworkUp.FindStringSubmatch(up.Text); got[2] != qemu.UserNetAddr || got[3] != "dhcp" {
					t.Errorf("network line %q: want %s via dhcp", up.Text, qemu.UserNetAddr)
				}
				t.Logf("figures: %s %s: config loaded %s after QEMU start (guest clock %s)", ab.board, src.name, secs(loaded.At), secs(guestClock(loaded)))
			})
		}
	}
}

// TestBadConfigThenFixed serves an invalid config: the init prints every
// error with its location, applies nothing and stays up, and loads the config
// once the served content is fixed, without a reboot.
func TestBadConfigThenFixed(t *testing.T) {
	const bad = `#cloud-config
hostname: fixme
kubernetes:
  vip: 10.0.0.300
  role: boss
`
	const good = "#cloud-config\nhostname: fixed\n"
	for _, ab := range archBoards {
		t.Run(ab.arch, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			srv := serveConfig(t)
			srv.set("/bad/user-data", []byte(bad))
			url := srv.url("/bad/user-data")

			// What the config package says about the document is what the
			// console must show, one line per error.
			_, diags := config.Load(config.Source{Name: url, Data: []byte(bad)})
			var want []*regexp.Regexp
			for _, d := range diags {
				if d.Severity == config.Error {
					want = append(want, regexp.MustCompile(fmt.Sprintf(`config: \S*user-data:%d:%d: error: %s`, d.Line, d.Column, regexp.QuoteMeta(d.Message))))
				}
			}
			if len(want) < 2 {
				t.Fatalf("config.Load found %d errors in the bad document, want 2 (bad vip, bad role): %v", len(want), diags)
			}

			m := boot(t, ctx, ab.board, image(t, ab.board), qemu.Config{ExtraCmdline: []string{"cairn.config=" + url}})
			waitFor(t, ctx, m, bootTimeout, reInitStarting)
			for _, re := range want {
				waitFor(t, ctx, m, stepTimeout, re)
			}
			retry := regexp.MustCompile(`config: invalid, nothing applied; retrying sources in (\S+)`)
			waitFor(t, ctx, m, stepTimeout, retry)
			if l, ok := findLine(m, reConfigLoaded); ok {
				t.Fatalf("an invalid config was loaded: %q", l)
			}

			fixed := time.Now()
			srv.set("/bad/user-data", []byte(good))
			loaded := waitForNext(t, ctx, m, stepTimeout, reConfigLoaded)
			if !regexp.MustCompile(regexp.QuoteMeta(url)).MatchString(loaded.Text) {
				t.Errorf("config line %q does not name %s", loaded.Text, url)
			}
			if m.Exited() {
				t.Fatal("QEMU exited")
			}
			if n := m.Count(reInitStarting); n != 1 {
				t.Errorf("the init started %d times, want once (no reboot)", n)
			}
			t.Logf("figures: %s: fixed config loaded %s after the fix, %d requests to the config URL",
				ab.board, secs(time.Since(fixed)), srv.requests("/bad/user-data"))
		})
	}
}

// findLine returns the first console line so far that matches re.
func findLine(m *qemu.Machine, re *regexp.Regexp) (string, bool) {
	for _, l := range m.Lines() {
		if re.MatchString(l.Text) {
			return l.Text, true
		}
	}
	return "", false
}
