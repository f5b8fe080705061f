package main

import (
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
