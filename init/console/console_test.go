package console

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	for _, tc := range []struct {
		t    time.Duration
		text string
		want string
	}{
		{0, "init: starting", "cairn: [00000.000] init: starting"},
		{4217 * time.Millisecond, "network: up eth0 10.0.2.15/24 via dhcp", "cairn: [00004.217] network: up eth0 10.0.2.15/24 via dhcp"},
		{123456789 * time.Millisecond, "x", "cairn: [123456.789] x"},
		{-time.Second, "x", "cairn: [00000.000] x"},
	} {
		if got := Line(tc.t, tc.text); got != tc.want {
			t.Errorf("Line(%v, %q) = %q, want %q", tc.t, tc.text, got, tc.want)
		}
	}
}

func TestLoggerWritesConsoleAndKmsg(t *testing.T) {
	var out bytes.Buffer
	kmsg := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(kmsg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l := New(Options{Out: &out, Kmsg: kmsg, Clock: func() time.Duration { return 1500 * time.Millisecond }})
	l.Printf("config: loaded from %s", "user-data")
	l.Print("two\nlines\n")
	want := "cairn: [00001.500] config: loaded from user-data\ncairn: [00001.500] two\ncairn: [00001.500] lines\n"
	if out.String() != want {
		t.Errorf("console got %q, want %q", out.String(), want)
	}
	got, _ := os.ReadFile(kmsg)
	wantK := "<15>cairn: [00001.500] config: loaded from user-data\n<15>cairn: [00001.500] two\n<15>cairn: [00001.500] lines\n"
	if string(got) != wantK {
		t.Errorf("kmsg got %q, want %q", got, wantK)
	}
}

func TestHandler(t *testing.T) {
	for _, tc := range []struct {
		name  string
		debug bool
		log   func(*slog.Logger)
		want  string
	}{
		{"stable line", false, func(l *slog.Logger) { l.Info("network: up eth0 10.0.2.15/24 via dhcp") }, "network: up eth0 10.0.2.15/24 via dhcp"},
		{"attrs", false, func(l *slog.Logger) { l.Info("dhcp: offer", "iface", "eth0", "server", "10.0.2.2") }, "dhcp: offer iface=eth0 server=10.0.2.2"},
		{"quoted", false, func(l *slog.Logger) { l.Info("x", "err", errors.New("no such file")) }, `x err="no such file"`},
		{"group", false, func(l *slog.Logger) { l.WithGroup("lease").With("ip", "10.0.0.5").Info("got") }, "got lease.ip=10.0.0.5"},
		{"warning", false, func(l *slog.Logger) { l.Warn("mount /tmp: busy") }, "warning: mount /tmp: busy"},
		{"error", false, func(l *slog.Logger) { l.Error("boom") }, "error: boom"},
		{"debug hidden", false, func(l *slog.Logger) { l.Debug("mount proc") }, ""},
		{"debug shown", true, func(l *slog.Logger) { l.Debug("mount proc") }, "debug: mount proc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			l := New(Options{Out: &out, Debug: tc.debug, Clock: func() time.Duration { return 0 }})
			tc.log(slog.New(l.Handler()))
			got := strings.TrimSuffix(strings.TrimPrefix(out.String(), "cairn: [00000.000] "), "\n")
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
