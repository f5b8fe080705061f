package debdeps

import (
	"strings"
	"testing"
)

const testIndex = `Package: app
Version: 1.0-1
Architecture: amd64
Depends: libfoo (>= 2.0), mta | mail-transport-agent, netbase
Pre-Depends: libc

Package: libfoo
Version: 1.9-1
Architecture: amd64
Depends: libc

Package: libfoo
Version: 2.1-1
Architecture: amd64
Depends: libc (>= 2.36)

Package: libfoo
Version: 2.1-1
Architecture: arm64
Depends: libc-arm64-only

Package: libc
Version: 2.36-9+deb12u7
Architecture: amd64
Multi-Arch: same

Package: libc
Version: 2.36-9+deb12u14
Architecture: amd64
Multi-Arch: same
Description: a long one
 continued on a second line,
 .
 and a third.

Package: postfix
Version: 3.7
Architecture: amd64
Provides: mail-transport-agent
Depends: libc

Package: netbase
Version: 6.4
Architecture: all

Package: broken
Version: 1
Architecture: amd64
Depends: libfoo (>= 3)

Package: cyclic-a
Version: 1
Architecture: amd64
Depends: cyclic-b

Package: cyclic-b
Version: 1
Architecture: amd64
Depends: cyclic-a:any
`

func testIx(t *testing.T) *Index {
	t.Helper()
	pkgs, err := ParsePackages(strings.NewReader(testIndex))
	if err != nil {
		t.Fatal(err)
	}
	return NewIndex("amd64", pkgs)
}

func names(rs []Resolved) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, " ")
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		want    []string
		skip    []string
		result  string
		wantErr string
	}{
		{name: "alternatives, provides, highest allowed version, arch all",
			want:   []string{"app"},
			result: "app=1.0-1 libc=2.36-9+deb12u14 libfoo=2.1-1 netbase=6.4 postfix=3.7"},
		{name: "skipped names are not followed",
			want: []string{"app"}, skip: []string{"mail-transport-agent", "mta"},
			result: "app=1.0-1 libc=2.36-9+deb12u14 libfoo=2.1-1 netbase=6.4"},
		{name: "a version constraint on what is asked",
			want:   []string{"libfoo (<< 2.0)"},
			result: "libc=2.36-9+deb12u14 libfoo=1.9-1"},
		{name: "cycles end", want: []string{"cyclic-a"}, result: "cyclic-a=1 cyclic-b=1"},
		{name: "unsatisfiable dependency names the chain",
			want:    []string{"broken"},
			wantErr: "libfoo (>= 3) (needed by broken): cannot satisfy libfoo (>= 3): libfoo (>= 3): the index has 2.1-1, 1.9-1"},
		{name: "unknown package",
			want:    []string{"nosuch"},
			wantErr: "nosuch: not in the amd64 index"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testIx(t).Resolve(tt.want, tt.skip...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve(%v) error = %v, want one containing %q", tt.want, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tt.result {
				t.Errorf("Resolve(%v) = %s\nwant %s", tt.want, names(got), tt.result)
			}
		})
	}
}

func TestResolveRecordsWhoNeededWhat(t *testing.T) {
	got, err := testIx(t).Resolve([]string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]string{}
	for _, r := range got {
		by[r.Name] = r.NeededBy
	}
	if by["app"] != "" || by["libfoo"] != "app" || by["postfix"] != "app" {
		t.Errorf("NeededBy = %v", by)
	}
}

func TestParseRelations(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "libc6 (>= 2.34), libmnl0 (>= 1.0.3-4~)", want: "[[libc6 (>= 2.34)] [libmnl0 (>= 1.0.3-4~)]]"},
		{in: "a | b:any (= 1:2.0-1) , c:native", want: "[[a b:any (= 1:2.0-1)] [c:native]]"},
		{in: "python3 (<< 3.12) <!nocheck>", want: "[[python3 (<< 3.12) <!nocheck>]]"}, // build profiles are kept, and resolution ignores them
		{in: "", want: "[]"},
		// dpkg reads the obsolete < and > as <= and >=; no package in
		// Debian 12's indexes uses them, and the library refuses them.
		{in: "old (< 2)", wantErr: `relation "old (< 2)": Unknown Operator`},
		{in: "a (>= 1", wantErr: `relation "a (>= 1": Oh no. Reached EOF before Number finished`},
		{in: "a (1.0)", wantErr: `relation "a (1.0)": Unknown Operator`},
		{in: "a (=> 1)", wantErr: `relation "a (=> 1)": version "> 1"`},
		{in: "a (>=)", wantErr: `relation "a (>=)": version "": version string is empty`},
		{in: "a, |", wantErr: `relation "a, |": an alternative is empty`},
		{in: "a, ${shlibs:Depends}", wantErr: "unexpanded substitution variable ${shlibs:Depends}"},
	}
	for _, tt := range tests {
		got, err := parseRelations(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseRelations(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseRelations(%q): %v", tt.in, err)
			continue
		}
		var groups []string
		for _, g := range got {
			var alts []string
			for _, d := range g.Possibilities {
				alts = append(alts, d.String())
			}
			groups = append(groups, "["+strings.Join(alts, " ")+"]")
		}
		if s := "[" + strings.Join(groups, " ") + "]"; s != tt.want {
			t.Errorf("parseRelations(%q) = %s, want %s", tt.in, s, tt.want)
		}
	}
}

func FuzzParsePackages(f *testing.F) {
	f.Add(testIndex)
	f.Fuzz(func(t *testing.T, s string) {
		pkgs, err := ParsePackages(strings.NewReader(s))
		if err != nil {
			return
		}
		ix := NewIndex("amd64", pkgs)
		for _, p := range pkgs {
			_, _ = ix.Resolve([]string{p.Name})
		}
	})
}

func TestDropped(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"usr/share/doc", true},
		{"usr/share/doc/libc6/copyright", true},
		{"usr/share/docs", false},
		{"usr/lib/x86_64-linux-gnu/gconv/UTF-16.so", true},
		{"usr/lib/aarch64-linux-gnu/gconv", true},
		{"usr/lib/x86_64-linux-gnu/libc.so.6", false},
		{"usr/sbin/iptables", false},
		{"usr", false},
	}
	for _, tt := range tests {
		if got := dropped(tt.name, DefaultDrop); got != tt.want {
			t.Errorf("dropped(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
