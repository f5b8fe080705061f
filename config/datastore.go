package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// DatastoreKind is which store keeps the cluster's state.
type DatastoreKind string

const (
	// DatastoreEmbedded is etcd run by the servers themselves (no
	// datastore-endpoint).
	DatastoreEmbedded DatastoreKind = "embedded-etcd"
	// DatastorePostgres, DatastoreMySQL and DatastoreSQLite are served to
	// kube-apiserver through kine.
	DatastorePostgres DatastoreKind = "postgres"
	DatastoreMySQL    DatastoreKind = "mysql"
	DatastoreSQLite   DatastoreKind = "sqlite"
	// DatastoreEtcd is an external etcd cluster kube-apiserver talks to
	// directly.
	DatastoreEtcd DatastoreKind = "etcd"
)

// Datastore is a parsed kubernetes.datastore-endpoint.
type Datastore struct {
	Kind DatastoreKind
	// Hosts are host:port pairs (etcd: one per endpoint).
	Hosts []string
	// Database is the database name (postgres, mysql) or the file path
	// (sqlite); empty for etcd.
	Database string
	User     string
	// Password is a secret: never log or print it; use Redacted.
	Password string
	// Query holds the parameters after "?" (sslmode=..., tls=...).
	Query string
	// Endpoint is the endpoint as written, password included: a secret.
	Endpoint string
	// URLs are the etcd endpoints, for DatastoreEtcd.
	URLs []string
}

// Redacted is the endpoint with its password replaced by <redacted>,
// safe for logs and the console.
func (d *Datastore) Redacted() string {
	if d == nil || d.Endpoint == "" {
		return ""
	}
	return redactEndpoint(d.Endpoint)
}

// External reports whether the datastore is kept outside the servers
// (anything but embedded etcd and sqlite).
func (d *Datastore) External() bool {
	return d != nil && d.Kind != DatastoreEmbedded && d.Kind != DatastoreSQLite
}

// Datastore parses datastore-endpoint; an empty endpoint is embedded etcd.
func (k *Kubernetes) Datastore() (*Datastore, error) {
	return ParseDatastore(k.DatastoreEndpoint)
}

// ParseDatastore parses an endpoint in one of the forms k3s documents:
//
//	postgres://user:pass@host:5432/db?sslmode=verify-full
//	mysql://user:pass@tcp(host:3306)/db
//	https://host1:2379,https://host2:2379   (etcd; http:// too)
//	sqlite:///var/lib/cairn/state.db        (single server only)
//
// Errors never contain the password.
func ParseDatastore(endpoint string) (*Datastore, error) {
	ep := strings.TrimSpace(endpoint)
	if ep == "" {
		return &Datastore{Kind: DatastoreEmbedded}, nil
	}
	scheme, rest, ok := strings.Cut(ep, "://")
	if !ok {
		return nil, fmt.Errorf("%q is not an endpoint URL; use postgres://user:pass@host:5432/db, mysql://user:pass@tcp(host:3306)/db or https://host:2379 for etcd", redactEndpoint(ep))
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return parsePostgres(ep)
	case "mysql":
		return parseMySQL(ep, rest)
	case "http", "https":
		return parseEtcd(ep)
	case "sqlite":
		db, q, _ := strings.Cut(rest, "?")
		return &Datastore{Kind: DatastoreSQLite, Database: db, Query: q, Endpoint: ep}, nil
	}
	return nil, fmt.Errorf("datastore scheme %q is not supported; use postgres://, mysql://, http(s):// (etcd) or sqlite://", scheme)
}

func parsePostgres(ep string) (*Datastore, error) {
	// A printed (redacted) config must load again.
	u, err := url.Parse(strings.Replace(ep, ":"+redactedText+"@", ":%3Credacted%3E@", 1))
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid postgres URL; use postgres://user:pass@host:5432/db (percent-encode special characters in the password)", redactEndpoint(ep))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q names no host; use postgres://user:pass@host:5432/db", redactEndpoint(ep))
	}
	hosts := strings.Split(u.Host, ",")
	for i, h := range hosts {
		if err := checkHostPort(h); err != nil {
			return nil, fmt.Errorf("postgres host %q: %w", h, err)
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			hosts[i] = net.JoinHostPort(strings.Trim(h, "[]"), "5432")
		}
	}
	d := &Datastore{Kind: DatastorePostgres, Hosts: hosts, Database: strings.TrimPrefix(u.Path, "/"), Query: u.RawQuery, Endpoint: ep}
	if u.User != nil {
		d.User = u.User.Username()
		d.Password, _ = u.User.Password()
	}
	if d.Password == "" {
		d.Password = u.Query().Get("password")
	}
	return d, nil
}

func parseMySQL(ep, rest string) (*Datastore, error) {
	const form = "use mysql://user:pass@tcp(host:3306)/db"
	open := strings.Index(rest, "(")
	closing := strings.LastIndex(rest, ")")
	if open < 0 || closing < open {
		return nil, fmt.Errorf("%q does not name its server as tcp(host:port); %s", redactEndpoint(ep), form)
	}
	head, addr, tail := rest[:open], rest[open+1:closing], rest[closing+1:]
	d := &Datastore{Kind: DatastoreMySQL, Endpoint: ep}
	netw := head
	if at := strings.LastIndex(head, "@"); at >= 0 {
		userinfo := head[:at]
		netw = head[at+1:]
		d.User, d.Password, _ = strings.Cut(userinfo, ":")
	}
	switch netw {
	case "tcp":
		if err := checkHostPort(addr); err != nil {
			return nil, fmt.Errorf("mysql address %q: %w; %s", addr, err, form)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, "3306")
		}
	case "unix":
	default:
		return nil, fmt.Errorf("mysql network %q is not tcp or unix; %s", netw, form)
	}
	d.Hosts = []string{addr}
	if !strings.HasPrefix(tail, "/") {
		return nil, fmt.Errorf("%q has no /database after the address; %s", redactEndpoint(ep), form)
	}
	d.Database, d.Query, _ = strings.Cut(tail[1:], "?")
	return d, nil
}

func parseEtcd(ep string) (*Datastore, error) {
	d := &Datastore{Kind: DatastoreEtcd, Endpoint: ep}
	for _, part := range strings.Split(ep, ",") {
		part = strings.TrimSpace(part)
		u, err := url.Parse(part)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("etcd endpoint %q is not an http:// or https:// URL; list etcd endpoints as https://host:2379,https://host2:2379", redactEndpoint(part))
		}
		if u.User != nil {
			return nil, fmt.Errorf("etcd endpoint %q carries a user name; etcd clients authenticate with datastore-certfile and datastore-keyfile", redactEndpoint(part))
		}
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("etcd endpoint %q has a path; give only scheme://host:port", part)
		}
		if err := checkHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("etcd endpoint %q: %w", part, err)
		}
		d.URLs = append(d.URLs, u.Scheme+"://"+u.Host)
		d.Hosts = append(d.Hosts, u.Host)
	}
	return d, nil
}

// checkHostPort accepts host, host:port, [v6] and [v6]:port with a
// numeric port.
func checkHostPort(hp string) error {
	if hp == "" {
		return fmt.Errorf("no host")
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		host, port = strings.Trim(hp, "[]"), ""
		if strings.ContainsAny(host, "[]/@ ") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
			return fmt.Errorf("not a host or host:port")
		}
	}
	if host == "" {
		return fmt.Errorf("no host")
	}
	if port != "" {
		n := 0
		for _, c := range port {
			if c < '0' || c > '9' || n > 65535 {
				return fmt.Errorf("port %q is not a number from 1 to 65535", port)
			}
			n = n*10 + int(c-'0')
		}
		if n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	}
	return nil
}

const redactedText = "<redacted>"

// redactEndpoint hides the password in any endpoint form (and a
// password= query parameter, its name percent-encoded or not), without
// needing the endpoint to parse. It errs on the side of hiding:
// everything between the first ":" of the user info and the last "@"
// goes.
func redactEndpoint(ep string) string {
	prefix, body := "", ep
	if scheme, rest, ok := strings.Cut(ep, "://"); ok {
		prefix, body = scheme+"://", rest
	}
	if at := strings.LastIndex(body, "@"); at >= 0 {
		if user, _, hasPass := strings.Cut(body[:at], ":"); hasPass {
			body = user + ":" + redactedText + body[at:]
		}
	}
	// password=... in a query string or a key=value DSN: a field that
	// starts the string or follows "?", "&", ";" or " ", whose name is a
	// password's; its value runs to the next "&", ";" or " ".
	out := prefix + body
	var b strings.Builder
	for {
		i := strings.IndexAny(out, "?&; ")
		field := out
		if i >= 0 {
			field = out[:i]
		}
		if name, _, ok := strings.Cut(field, "="); ok && passwordParam(name) {
			field = name + "=" + redactedText
			i = strings.IndexAny(out[len(name)+1:], "&; ")
			if i >= 0 {
				i += len(name) + 1
			}
		}
		b.WriteString(field)
		if i < 0 {
			return b.String()
		}
		b.WriteByte(out[i])
		out = out[i+1:]
	}
}

// passwordParam reports whether a parameter's name (percent-encoded or
// not, as pgx reads it) is a password's.
func passwordParam(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	return strings.EqualFold(name, "password") || strings.EqualFold(name, "passwd")
}

// Redact replaces the password in text (a program's output, an error)
// with <redacted>, in every form it may take there: as it is, as the
// endpoint writes it, percent-encoded as a URL's user info and its query
// encode it (what kine prints when it rebuilds the URL), with the
// encodings' hex digits in either case, and each of those quoted as Go's
// %q quotes it (a URL in an error). pgx prints its
// connection strings with the password as "xxxxx" already.
func (d *Datastore) Redact(text string) string {
	if d == nil || d.Password == "" {
		return text
	}
	pw := d.Password
	forms := append([]string{pw,
		strings.TrimPrefix(url.UserPassword("", pw).String(), ":"),
		url.QueryEscape(pw), url.PathEscape(pw)}, d.writtenPasswords()...)
	for _, f := range forms {
		forms = append(forms, lowerHex(f))
	}
	for _, f := range forms {
		q := strconv.Quote(f)
		forms = append(forms, q[1:len(q)-1])
	}
	// The longest first: a form may hold a shorter one.
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	for _, f := range slices.Compact(forms) {
		if f != "" {
			text = strings.ReplaceAll(text, f, redactedText)
		}
	}
	return text
}

// lowerHex is s with its percent-encodings' hex digits in lower case.
func lowerHex(s string) string {
	b := []byte(s)
	for i := range b {
		if c := b[i]; i > 0 && 'A' <= c && c <= 'F' && (b[i-1] == '%' || i > 1 && b[i-2] == '%') {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// writtenPasswords are the password as the endpoint writes it: in its
// user info and in each password= parameter, percent-encoded as there.
func (d *Datastore) writtenPasswords() []string {
	_, body, ok := strings.Cut(d.Endpoint, "://")
	if !ok {
		return nil
	}
	var out []string
	userinfo := body
	if i := strings.IndexAny(body, "/?("); i >= 0 {
		userinfo = body[:i]
	}
	if at := strings.LastIndex(userinfo, "@"); at >= 0 {
		if _, pw, ok := strings.Cut(userinfo[:at], ":"); ok {
			out = append(out, pw)
		}
	}
	_, query, _ := strings.Cut(body, "?")
	for _, field := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
		if name, v, ok := strings.Cut(field, "="); ok && passwordParam(name) {
			out = append(out, v)
		}
	}
	return out
}
