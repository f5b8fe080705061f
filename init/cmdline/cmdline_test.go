package cmdline

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		line string
		want Line
	}{
		{"console=ttyS0,115200 panic=-1\n", Line{"console=ttyS0,115200", "panic=-1"}},
		{`  quiet	"ds=nocloud;s=http://x/" `, Line{"quiet", "ds=nocloud;s=http://x/"}},
		{`cairn.config="http://x/a b" x`, Line{"cairn.config=http://x/a b", "x"}},
		{`a "" b`, Line{"a", "", "b"}},
		{`unterminated="a b`, Line{"unterminated=a b"}},
		{"", nil},
	} {
		if got := Parse(c.line); !slices.Equal(got, c.want) {
			t.Errorf("Parse(%q) = %q, want %q", c.line, got, c.want)
		}
	}
}

func TestGet(t *testing.T) {
	l := Parse(`console=ttyS0,115200 cairn.system=live cairn.debug ds=nocloud;s=http://10.0.2.2/ cairn.config=a "cairn.config=b c"`)
	for _, tc := range []struct {
		key  string
		has  bool
		want string
	}{
		{"cairn.system", true, "live"},
		{"cairn.debug", true, ""},
		{"cairn.config", true, "b c"},
		{"ds", true, "nocloud;s=http://10.0.2.2/"},
		{"cairn", false, ""},
		{"console", true, "ttyS0,115200"},
	} {
		if got := l.Has(tc.key); got != tc.has {
			t.Errorf("Has(%q) = %v, want %v", tc.key, got, tc.has)
		}
		if got := l.Get(tc.key); got != tc.want {
			t.Errorf("Get(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestStringRoundTrips(t *testing.T) {
	l := Line{"console=ttyS0", "cairn.config=http://x/a b", "", "quiet"}
	s := l.String()
	if s != `console=ttyS0 "cairn.config=http://x/a b" "" quiet` {
		t.Errorf("String() = %q", s)
	}
	if got := Parse(s); !slices.Equal(got, l) {
		t.Errorf("Parse(String()) = %q, want %q", got, l)
	}
}

func TestReadIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmdline")
	long := strings.Repeat("x", MaxLen+100)
	if err := os.WriteFile(path, []byte("quiet "+long), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0] != "quiet" || len(l[1]) != MaxLen-len("quiet ") {
		t.Errorf("Read of a %d-byte file: %d words, last %d bytes; want quiet and the rest up to %d bytes", MaxLen+106, len(l), len(l[len(l)-1]), MaxLen)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Read of a missing file succeeded")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`console=ttyS0 "ds=nocloud;s=http://x/" a=""`)
	f.Add(`"unterminated`)
	f.Fuzz(func(t *testing.T, s string) {
		l := Parse(s)
		if got := Parse(l.String()); !slices.Equal(got, l) {
			t.Errorf("Parse(Parse(%q).String()) = %q, want %q", s, got, l)
		}
	})
}
