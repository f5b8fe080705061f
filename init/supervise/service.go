package supervise

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// Service is one supervised program.
type Service struct {
	// Name identifies the service on the console, in dependencies and in
	// its log file name.
	Name string
	// Path is the program; Args are its arguments (without argv[0]).
	Path string
	Args []string
	// Env is the whole environment; Dir the working directory ("/" when empty).
	Env []string
	Dir string
	// Needs names services that must be ready before this one starts.
	Needs []string
	// Ready reports whether the service is ready for its dependents; a
	// service without a check is ready as soon as it runs.
	Ready ReadyCheck
	// Restart says when an exited service runs again; Backoff how long
	// the supervisor waits before it does.
	Restart Restart
	Backoff Backoff
	// Console copies the service's output to the console, each line as
	// "<name>| <line>".
	Console bool
	// PrivateOutput keeps the service's output off the console even when
	// it exits: by default the exit line quotes its last output line, which
	// usually says why; a program whose output may hold a secret (kine
	// echoes the datastore endpoint) sets this.
	PrivateOutput bool
	// StopTimeout is the grace period between SIGTERM and SIGKILL (10 s
	// when zero).
	StopTimeout time.Duration
	// Credential runs the program as another user; root when nil.
	Credential *syscall.Credential
}

// Restart is a restart policy.
type Restart int

const (
	// Always restarts the service whenever it exits.
	Always Restart = iota
	// OnFailure restarts it only when it exits with a non-zero status.
	OnFailure
	// Never runs it once.
	Never
)

func (r Restart) String() string {
	switch r {
	case Always:
		return "always"
	case OnFailure:
		return "on-failure"
	case Never:
		return "never"
	}
	return fmt.Sprintf("Restart(%d)", int(r))
}

// Backoff is a capped exponential backoff: the first restart waits
// Initial, each further one twice as long up to Max; a run that lasted
// Reset or longer starts the sequence over.
type Backoff struct {
	Initial time.Duration // 1 s when zero
	Max     time.Duration // 1 min when zero
	Reset   time.Duration // 2 min when zero
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max <= 0 {
		b.Max = time.Minute
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Reset <= 0 {
		b.Reset = 2 * time.Minute
	}
	return b
}

// Next returns the delay after prev (0 for the first restart).
func (b Backoff) Next(prev time.Duration) time.Duration {
	b = b.withDefaults()
	if prev <= 0 {
		return b.Initial
	}
	return min(prev*2, b.Max)
}

// ReadyCheck returns nil once the service is ready; the supervisor calls
// it repeatedly while the service runs.
type ReadyCheck func(ctx context.Context) error

// ReadyFile is ready when path exists.
func ReadyFile(path string) ReadyCheck {
	return func(context.Context) error {
		_, err := os.Stat(path)
		return err
	}
}

// ReadyTCP is ready when addr ("host:port") accepts a connection.
func ReadyTCP(addr string) ReadyCheck {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// ReadyHTTP is ready when url answers with a 2xx status. A nil tlsConfig
// uses the system roots.
func ReadyHTTP(url string, tlsConfig *tls.Config) ReadyCheck {
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: nil},
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s answered %s", url, resp.Status)
		}
		return nil
	}
}
