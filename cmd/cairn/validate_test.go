package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// The documents and golden outputs live with the config package's test data.
const validateData = "../../config/testdata"

// TestValidate runs the command as a user would and compares the exit
// status, standard output and standard error with golden files.
func TestValidate(t *testing.T) {
	load := func(name string) string { return filepath.Join(validateData, "load", name) }
	cluster := func(name string) string { return filepath.Join(validateData, "cluster", name) }
	tests := []struct {
		name  string
		args  []string
		stdin string
	}{
		{"good", []string{load("ha-server.yaml")}, ""},
		{"good-print", []string{"--print", load("ha-server.yaml")}, ""},
		{"warnings-only", []string{load("plain-with-ignored.yaml")}, ""},
		{"errors", []string{load("semantic-errors.yaml")}, ""},
		{"several-files", []string{load("agent.yaml"), load("schema-errors.yaml"), load("etcd.yaml"), "--print"}, ""},
		{"merge", []string{"--merge", "--print", load("agent.yaml"), "-"}, "#cloud-config\nhostname: agent-7\nkubernetes:\n  token: override-Wm4Kp8Rt2Zx6Qv9L\n  node-label: [zone=c]\n"},
		{"stdin-error", []string{"-"}, "#cloud-config\nkubernetes:\n  role: agent\n"},
		{"missing-file", []string{filepath.Join(validateData, "validate", "does-not-exist.yaml")}, ""},
		{"no-args", nil, ""},
		{"cluster", []string{"--cluster", cluster("s1.yaml"), cluster("s2.yaml"), cluster("a1.yaml")}, ""},
		{"cluster-differs", []string{"--cluster", cluster("s1.yaml"), cluster("s2-differs.yaml"), cluster("a1-elsewhere.yaml")}, ""},
		{"cluster-invalid-file", []string{"--cluster", cluster("s1.yaml"), load("semantic-errors.yaml")}, ""},
		{"cluster-and-merge", []string{"--cluster", "--merge", cluster("s1.yaml")}, ""},
		{"dev-zero", []string{"/dev/zero"}, ""},
		{"network-config", []string{"--print", filepath.Join(validateData, "validate", "network-config.yaml"), filepath.Join(validateData, "validate", "network-config")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCairn(t, tt.stdin, append([]string{"validate"}, tt.args...)...)
			got := fmt.Sprintf("$ cairn validate %s\n--- exit %d\n--- stdout\n%s--- stderr\n%s",
				strings.Join(tt.args, " "), code, stdout, stderr)
			file := filepath.Join(validateData, "validate", tt.name+".golden")
			if *updateGolden {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
