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
