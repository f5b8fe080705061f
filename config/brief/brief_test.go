package brief

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestLines(t *testing.T) {
	for _, tt := range []struct{ in, first, last string }{
		{"", "", ""},
		{"\n  one  \ntwo\n\n", "one", "two"},
		{"solo", "solo", "solo"},
		{strings.Repeat("x", 12), "xxxxxxxxxx…", "xxxxxxxxxx…"},
	} {
		if got := FirstLine([]byte(tt.in), 10); got != tt.first {
			t.Errorf("FirstLine(%q) = %q, want %q", tt.in, got, tt.first)
		}
		if got := LastLine([]byte(tt.in), 10); got != tt.last {
			t.Errorf("LastLine(%q) = %q, want %q", tt.in, got, tt.last)
		}
	}
}

func TestErr(t *testing.T) {
	refused := errors.New("connect: connection refused")
	err := fmt.Errorf("Get https://10.0.0.1:6443/readyz: %w", fmt.Errorf("dial tcp 10.0.0.1:6443: %w", refused))
	if got := Err(err); got != "connection refused" {
		t.Errorf("Err = %q", got)
	}
	if got := Err(errors.New("plain")); got != "plain" {
		t.Errorf("Err(plain) = %q", got)
	}
}

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:s3cret@host/c.yaml?token=s3cret#s3cret": "https://host/c.yaml?…",
		"http://10.0.2.2:8080/user-data":                      "http://10.0.2.2:8080/user-data",
		"https://host/%zz":                                    "(a URL that does not parse)",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}
