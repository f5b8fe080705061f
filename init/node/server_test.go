package node

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config"
)

// The console's reason for a datastore that does not answer: a known
// cause in plain words, else kine's last error, never the password.
func TestDiagnose(t *testing.T) {
	const pw = "pg-s3cret"
	ds, err := config.ParseDatastore("postgres://kine:" + pw + "@10.0.0.1:5432/kine")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ds: ds}
	timeout := context.DeadlineExceeded
	for _, tt := range []struct {
		err  error
		kine string
		want string
	}{
		{timeout, "", "no answer within 15s"},
		{errors.New("dial tcp 10.0.0.1:5432: connect: connection refused"), "", "connection refused: is the database running"},
		{timeout, `time="x" level=error msg="failed to ping connection: FATAL: password authentication failed for user \"kine\""`, "authentication failed: check the user and password"},
		{timeout, `time="x" level=error msg="failed to ping: FATAL: no pg_hba.conf entry for host \"10.0.0.9\""`, "add it to pg_hba.conf"},
		{timeout, `time="x" level=error msg="weird failure for postgres://kine:` + pw + `@10.0.0.1"`, "kine: weird failure for postgres://kine:<redacted>@10.0.0.1"},
		{timeout, "\x1b[31mERRO\x1b[0m[2026-11-30T06:15:00Z] Failed to ping database connection: failed to connect to `user=postgres database=kine`: server error: FATAL: something odd (SQLSTATE 3D000) ", "kine: Failed to ping database connection: failed to connect to `user=postgres database=kine`: server error: FATAL: something odd"},
		{timeout, `time="x" level=error msg="Failed to ping database connection: failed to connect: server error: FATAL: database \"kine\" is odd (SQLSTATE 3D000)"`, `kine: Failed to ping database connection: failed to connect: server error: FATAL: database "kine" is odd`},
	} {
		got := s.diagnoseText(tt.err, tt.kine, datastoreAttempt)
		if !strings.Contains(got, tt.want) {
			t.Errorf("diagnose(%v, %q) = %q, want it to contain %q", tt.err, tt.kine, got, tt.want)
		}
		if strings.Contains(got, pw) {
			t.Errorf("diagnose shows the password: %q", got)
		}
	}
}

// A password with characters a URL encodes is hidden in kine's lines in
// every form kine and Go print it: percent-encoded as the endpoint writes
// it or as kine rebuilds the URL, and quoted inside an error.
func TestDiagnoseEncodedPassword(t *testing.T) {
	const pw = "p@ss/w:rd%"
	ds, err := config.ParseDatastore("postgres://kine:p%40ss%2fw%3ard%25@10.0.0.1:5432/kine")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Password != pw {
		t.Fatalf("password %q, want %q", ds.Password, pw)
	}
	s := &server{ds: ds}
	for _, kine := range []string{
		`time="x" level=error msg="failed to ensure existence of database kine: postgres://kine:p%40ss%2Fw%3Ard%25@10.0.0.1:5432/postgres?sslmode=disable: odd"`,
		`time="x" level=error msg="weird failure for postgres://kine:p%40ss%2fw%3ard%25@10.0.0.1:5432/kine"`,
		`time="x" level=error msg="parse \"postgres://kine:p%40ss%2Fw%3Ard%25@10.0.0.1\": odd"`,
		`time="x" level=error msg="password p@ss/w:rd% is odd"`,
	} {
		got := s.diagnoseText(context.DeadlineExceeded, kine, datastoreAttempt)
		for _, form := range []string{pw, "p%40ss%2Fw%3Ard%25", "p%40ss%2fw%3ard%25", "%3Ard", "%3ard"} {
			if strings.Contains(got, form) {
				t.Errorf("diagnose(%q) = %q: shows the password as %q", kine, got, form)
			}
		}
		if !strings.Contains(got, "<redacted>") {
			t.Errorf("diagnose(%q) = %q: no <redacted> where the password was", kine, got)
		}
	}
}
