package container

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Datastore kinds, as `cairn cluster up --datastore` spells them.
const (
	Postgres = "postgres"
	MySQL    = "mysql" // Debian's MariaDB
	Etcd     = "etcd"
)

// Datastore is one of Debian's database servers run for a cluster inside
// its network namespace, listening on the bridge address Addr only. The
// data lives in Dir; secrets never reach a command line.
type Datastore struct {
	Kind     string     `json:"kind"`
	Dir      string     `json:"dir"`
	Addr     netip.Addr `json:"addr"`
	Password string     `json:"-"` // kept by the caller, in a 0600 file
	Log      string     `json:"log"`
	// TLS is etcd's certificates (NewEtcdTLS); etcd needs them.
	TLS *EtcdTLS `json:"-"`
}

// Port is the datastore's TCP port.
func (d Datastore) Port() int {
	switch d.Kind {
	case Postgres:
		return 5432
	case MySQL:
		return 3306
	}
	return 2379
}

// Endpoint is the datastore-endpoint nodes are given (with the password).
func (d Datastore) Endpoint() string {
	switch d.Kind {
	case Postgres:
		return fmt.Sprintf("postgres://postgres:%s@%s:5432/kine?sslmode=disable", d.Password, d.Addr)
	case MySQL:
		return fmt.Sprintf("mysql://kine:%s@tcp(%s:3306)/kine", d.Password, d.Addr)
	}
	return EtcdEndpoint(d.Addr)
}

// StopSignal asks the server for a fast, clean shutdown.
func (d Datastore) StopSignal() syscall.Signal {
	if d.Kind == Postgres {
		return syscall.SIGINT // PostgreSQL's fast shutdown
	}
	return syscall.SIGTERM
}

// Start initializes the data directory (created here; its parent must be
// traversable by the database's user), starts the server detached inside
// n and waits up to two minutes until it accepts connections and, for
// MariaDB, has its user.
func (d Datastore) Start(ctx context.Context, n *Network) (Proc, error) {
	var cmd *exec.Cmd
	var err error
	switch d.Kind {
	case Postgres:
		cmd, err = d.postgres(ctx, n)
	case MySQL:
		cmd, err = d.mariadb(ctx, n)
	case Etcd:
		cmd, err = d.etcd(n)
	default:
		return Proc{}, fmt.Errorf("datastore %q: want %s, %s or %s", d.Kind, Postgres, MySQL, Etcd)
	}
	if err != nil {
		return Proc{}, err
	}
	p, err := StartDetached(cmd, d.Log)
	if err != nil {
		return p, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	addr := fmt.Sprintf("%s:%d", d.Addr, d.Port())
	for {
		c, err := n.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if !p.Alive() || time.Now().After(deadline) || ctx.Err() != nil {
			return p, fmt.Errorf("%s did not listen on %s: %v; its log %s ends:\n%s", d.Kind, addr, err, d.Log, Tail(d.Log, 15))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d.Kind == MySQL {
		return p, d.mariadbUser(ctx, p, deadline)
	}
	return p, nil
}

func (d Datastore) postgres(ctx context.Context, n *Network) (*exec.Cmd, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return nil, fmt.Errorf("PostgreSQL is not installed (Debian's postgresql; `make deps` installs it)")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	if err := os.Mkdir(d.Dir, 0o700); err != nil {
		return nil, err
	}
	pw := filepath.Join(d.Dir, "pw")
	if err := os.WriteFile(pw, []byte(d.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	data := filepath.Join(d.Dir, "data")
	if out, err := exec.CommandContext(ctx, "chown", "-R", "postgres:postgres", d.Dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chown %s to postgres: %v: %s", d.Dir, err, out)
	}
	out, err := exec.CommandContext(ctx, "runuser", "-u", "postgres", "--", filepath.Join(bin, "initdb"), "-D", data,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pw, "-U", "postgres").CombinedOutput()
	os.Remove(pw)
	if err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// initdb allows TCP from loopback only; the nodes are on the bridge.
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(hba, "host all all %s scram-sha-256\n", n.Subnet.Masked())
	hba.Close()
	// setpriv execs postgres in place: the recorded PID is postgres's own.
	return n.Command(context.Background(), "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", filepath.Join(bin, "postgres"),
		"-D", data, "-c", "listen_addresses="+d.Addr.String(), "-c", "unix_socket_directories="+d.Dir,
		"-c", "max_connections=200", "-c", "fsync=off"), nil
}

func (d Datastore) mariadb(ctx context.Context, n *Network) (*exec.Cmd, error) {
	if _, err := exec.LookPath("mariadbd"); err != nil {
		return nil, fmt.Errorf("MariaDB is not installed (Debian's mariadb-server; `make deps` installs it)")
	}
	if err := os.Mkdir(d.Dir, 0o700); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "chown", "mysql:mysql", d.Dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chown %s to mysql: %v: %s", d.Dir, err, out)
	}
	data := filepath.Join(d.Dir, "data")
	if out, err := exec.CommandContext(ctx, "mariadb-install-db", "--user=mysql", "--datadir="+data,
		"--auth-root-authentication-method=socket", "--skip-test-db").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	return n.Command(context.Background(), "mariadbd", "--no-defaults", "--user=mysql", "--datadir="+data,
		"--socket="+filepath.Join(d.Dir, "sock"), "--bind-address="+d.Addr.String(), "--port=3306",
		"--pid-file="+filepath.Join(d.Dir, "pid"), "--innodb-flush-log-at-trx-commit=0"), nil
}

// mariadbUser creates the user "kine" that logs in with the password from
// the bridge; the statement goes on standard input, not a command line.
func (d Datastore) mariadbUser(ctx context.Context, p Proc, deadline time.Time) error {
	sql := "CREATE USER IF NOT EXISTS 'kine'@'%' IDENTIFIED BY '" + d.Password + "'; GRANT ALL ON *.* TO 'kine'@'%';\n"
	for {
		cmd := exec.CommandContext(ctx, "mariadb", "--no-defaults", "-S", filepath.Join(d.Dir, "sock"), "-u", "root")
		cmd.Stdin = strings.NewReader(sql)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		if !p.Alive() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("MariaDB did not take the user kine: %v: %s", err, bytes.TrimSpace(out))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (d Datastore) etcd(n *Network) (*exec.Cmd, error) {
	if _, err := exec.LookPath("etcd"); err != nil {
		return nil, fmt.Errorf("etcd is not installed (Debian's etcd-server; `make deps` installs it)")
	}
	if d.TLS == nil {
		return nil, fmt.Errorf("the etcd datastore has no certificates (container.NewEtcdTLS)")
	}
	if err := os.Mkdir(d.Dir, 0o700); err != nil {
		return nil, err
	}
	args, err := d.TLS.ServerArgs(d.Dir, d.Addr)
	if err != nil {
		return nil, err
	}
	return n.Command(context.Background(), "etcd", args...), nil
}

// Tail is the last n lines of a log file (at most 64 KiB are read).
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const most = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return "(" + err.Error() + ")"
	}
	off := max(st.Size()-most, 0)
	buf := make([]byte, st.Size()-off)
	k, _ := f.ReadAt(buf, off)
	lines := strings.Split(strings.TrimRight(string(buf[:k]), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
