package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetBusyboxOption(t *testing.T) {
	cfg := "CONFIG_STATIC=y\n# CONFIG_FEATURE_DI_ENV_HACK is not set\nCONFIG_ASH=y\n"
	got, err := setBusyboxOption(cfg, busyboxOption)
	if err != nil {
		t.Fatal(err)
	}
	if want := "CONFIG_STATIC=y\nCONFIG_FEATURE_DI_ENV_HACK=y\nCONFIG_ASH=y\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if again, err := setBusyboxOption(got, busyboxOption); err != nil || again != got {
		t.Errorf("set twice: %q, %v", again, err)
	}
	for _, bad := range []string{"CONFIG_ASH=y\n", "CONFIG_FEATURE_DI_ENV_HACK=m\n", "# CONFIG_FEATURE_DI_ENV_HACK_X is not set\n"} {
		if _, err := setBusyboxOption(bad, busyboxOption); err == nil || !strings.Contains(err.Error(), busyboxOption) {
			t.Errorf("%q: err %v, want one naming %s", bad, err, busyboxOption)
		}
	}
}

func TestSourceLines(t *testing.T) {
	in := "http://deb.debian.org/debian/ bookworm main\n" +
		"http://deb.debian.org/debian/ bookworm main\n" +
		"http://deb.debian.org/debian/ bookworm non-free-firmware\n" +
		"http://deb.debian.org/debian-security/ bookworm-security main\n" +
		"garbage\n"
	want := "deb-src http://deb.debian.org/debian-security/ bookworm-security main\n" +
		"deb-src http://deb.debian.org/debian/ bookworm main\n"
	if got := sourceLines(in); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := sourceLines("http://example/ x contrib\n"); got != "" {
		t.Errorf("no main: got %q", got)
	}
}

// TestNewestDsc: Debian's order, not the file names' (-10 after -4).
func TestNewestDsc(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"1.35.0-4", "1.35.0-10", "1.35.0-4+deb12u1", "1.30.1-6"} {
		if err := os.WriteFile(filepath.Join(dir, "busybox_"+v+".dsc"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := newestDsc(dir)
	if err != nil || filepath.Base(got) != "busybox_1.35.0-10.dsc" {
		t.Errorf("newest: %s, %v; want busybox_1.35.0-10.dsc", got, err)
	}
	if _, err := newestDsc(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no busybox source package") {
		t.Errorf("empty directory: %v", err)
	}
}
