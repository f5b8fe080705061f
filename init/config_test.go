package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/init/datasource"
)

// What the console says for one reading of the sources, and whether the
// config is applied: a refused source stops the boot as an invalid config
// does (a line saying why, nothing applied), and is never taken for no
// source, which would start the node on the defaults.
func TestReadConfig(t *testing.T) {
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write([]byte("#cloud-config\n" + strings.Repeat(" ", config.MaxDocumentSize)))
	zw.Close()
	for _, tc := range []struct {
		name  string
		baked []byte // nil: none
		lines []string
		apply bool
	}{
		{"a user-data that expands past the limit", bomb.Bytes(),
			[]string{"config: /etc/cairn/config.yaml: error: expands to more than 4194304 bytes"}, false},
		{"a shell script", []byte("#!/bin/sh\necho hi\n"),
			[]string{"config: /etc/cairn/config.yaml: error: a shell script; cairn reads only #cloud-config"}, false},
		{"an invalid config", []byte("#cloud-config\nkubernetes:\n  role: boss\n"),
			[]string{`config: /etc/cairn/config.yaml:3:9: error: kubernetes.role "boss"`}, false},
		{"a valid config", []byte("#cloud-config\nhostname: a1\n"),
			[]string{"config: loaded from /etc/cairn/config.yaml"}, true},
		{"no source", nil, []string{"config: loaded from defaults (no config source found)"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.baked != nil {
				p := filepath.Join(root, "etc/cairn/config.yaml")
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, tc.baked, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg, lines := readConfig(datasource.Gather(context.Background(), datasource.Options{Root: root, Cmdline: "quiet", NoDevices: true}))
			if (cfg != nil) != tc.apply {
				t.Errorf("config applied: %v, want %v", cfg != nil, tc.apply)
			}
			if len(lines) != len(tc.lines) {
				t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tc.lines, "\n"))
			}
			for i, want := range tc.lines {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d: %q, want it to start %q", i, lines[i], want)
				}
			}
		})
	}
}
