package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-os/cairn/init/cmdline"
)

func TestQuietKernel(t *testing.T) {
	for _, tt := range []struct {
		cmdline, want string
	}{
		{"console=ttyS0 panic=-1", "5"},
		{"console=ttyS0 cairn.debug", "7 4 1 7"},
		{"console=ttyS0 loglevel=8", "7 4 1 7"},
		{"debug", "7 4 1 7"},
		{"console=ttyS0 quiet", "7 4 1 7"},
		{"ignore_loglevel", "7 4 1 7"},
		// A word that only starts like one leaves the choice to cairn.
		{"console=ttyS0 debugfs=on loglevelx=1", "5"},
	} {
		printk := filepath.Join(t.TempDir(), "printk")
		os.WriteFile(printk, []byte("7 4 1 7"), 0o644)
		quietKernel(cmdline.Parse(tt.cmdline), printk)
		if got, _ := os.ReadFile(printk); string(got) != tt.want {
			t.Errorf("%q: printk = %q, want %q", tt.cmdline, got, tt.want)
		}
	}
}
