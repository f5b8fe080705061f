package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cairn-os/cairn/config/files"
)

// DefaultPrivateRegistry is the registries file k3s reads. cairn reads it
// too when write_files writes it and neither registries nor
// private-registry is set, so a k3s user's config works as pasted.
const DefaultPrivateRegistry = "/etc/rancher/k3s/registries.yaml"

// MaxRegistriesSize bounds a private-registry file: it names hosts and
// files, so even a long one is a few kilobytes.
const MaxRegistriesSize = 1 << 20

// maxRewrite bounds a rewrite's regular expression.
const maxRewrite = 1024

// RegistryConfig returns the registries containerd uses: registries, or
// else the file private-registry names, read (at most MaxRegistriesSize
// bytes) and checked now, at boot, as strictly as the cloud-config; nil
// when neither is set. An invalid file is an error listing every problem
// as FILE:LINE:COL; no secret of the file is in it.
func (k *Kubernetes) RegistryConfig() (*Registries, error) {
	if k.Registries != nil || k.PrivateRegistry == "" {
		return k.Registries, nil
	}
	data, err := files.Read(k.PrivateRegistry, MaxRegistriesSize)
	if err != nil {
		return nil, fmt.Errorf("kubernetes.private-registry: %w; write the file with write_files, or drop private-registry", err)
	}
	r, diags := parseRegistries(k.PrivateRegistry, data, k.Distribution != "k3s")
	if diags.HasErrors() {
		var lines []string
		for _, d := range diags.Errors() {
			lines = append(lines, d.String())
		}
		return nil, fmt.Errorf("kubernetes.private-registry %s is not a valid registries file; fix it (k3s's registries.yaml format):\n%s", k.PrivateRegistry, strings.Join(lines, "\n"))
	}
	return r, nil
}

// parseRegistries reads a registries file (k3s's registries.yaml) named
// name with the cloud-config's strict decoder and checks it; builtin says
// cairn's own containerd will use it (k3s's takes rewrites and identity
// tokens too). r is nil when there is an error.
func parseRegistries(name string, data []byte, builtin bool) (r *Registries, diags Diagnostics) {
	defer func() {
		if p := recover(); p != nil {
			r = nil
			diags = Diagnostics{{File: name, Line: 1, Column: 1, Severity: Error,
				Message: fmt.Sprintf("%s (%v); nothing applied — please report this with the file", internalError, p)}}
		}
	}()
	d := newDecoder(name)
	r = &Registries{}
	if len(data) > MaxRegistriesSize {
		d.errorf(&yaml.Node{Line: 1, Column: 1}, "", "the registries file is larger than %d bytes; cairn refuses it: check that this is the right file", MaxRegistriesSize)
		return nil, d.diags
	}
	if root := d.document(data); root != nil {
		d.decode(root, reflect.ValueOf(r).Elem(), "")
	}
	var bad []string
	for _, dg := range d.diags {
		if dg.Severity == Error {
			bad = append(bad, dg.Path)
		}
	}
	rc := registryCheck{builtin: builtin, add: func(sev Severity, p string, at []string, msg string) {
		if related(p, bad) {
			return
		}
		l := pos{File: name}
	find:
		for _, a := range append(append([]string{}, at...), p) {
			for q := a; q != ""; q = parentPath(q) {
				if found, ok := d.locs[q]; ok {
					l = found
					break find
				}
			}
		}
		d.keep(Diagnostic{File: l.File, Line: l.Line, Column: l.Column, Severity: sev, Path: p, Message: msg})
	}}
	if !d.tooLarge {
		rc.check(r)
	}
	sortDiags(d.diags, []string{name})
	diags = capped(d.diags, d.dropped, d.droppedErr)
	if diags.HasErrors() {
		return nil, diags
	}
	return r, diags
}

// registries checks the kubernetes keys of registries: registries itself,
// private-registry (and the file when write_files writes it) and
// disable-default-registry-endpoint.
func (ck *checker) registries() {
	k := &ck.c.Kubernetes
	const kp = "kubernetes."
	builtin := k.Distribution != "k3s"
	rc := registryCheck{prefix: kp + "registries.", builtin: builtin, add: func(sev Severity, p string, at []string, msg string) {
		ck.add(sev, p, at, "%s", msg)
	}}
	rc.check(k.Registries)
	if k.Registries != nil {
		if k.PrivateRegistry != "" {
			ck.errorf(kp+"private-registry", "kubernetes.registries and kubernetes.private-registry are both set; keep one")
		}
		for i, w := range ck.c.WriteFiles {
			if w.Path == DefaultPrivateRegistry {
				p := fmt.Sprintf("write_files[%d]", i)
				ck.add(Error, p+".path", []string{p + ".path", p}, "%s writes %s, the registries file k3s reads, and kubernetes.registries is set too; keep one (private-registry: %s reads the file)", p, w.Path, w.Path)
			}
		}
	}
	if k.DisableDefaultRegistryEndpoint && k.Registries == nil && k.PrivateRegistry == "" {
		ck.warnf(kp+"disable-default-registry-endpoint", "kubernetes.disable-default-registry-endpoint: no registry has mirrors (neither registries nor private-registry is set), so every image comes from its own registry; it is ignored")
	}
	pr := k.PrivateRegistry
	switch {
	case pr == "":
		return
	case !strings.HasPrefix(pr, "/"):
		ck.errorf(kp+"private-registry", "kubernetes.private-registry %q is relative; give the absolute path of the file (write it with write_files)", pr)
		return
	case path.Clean(pr) != pr:
		ck.errorf(kp+"private-registry", "kubernetes.private-registry %q is not a clean file path; write it as %s", pr, path.Clean(pr))
		return
	}
	// The file is checked now when write_files writes it (the last entry
	// for its path wins); a file built into the image is read at boot.
	last := -1
	for i, w := range ck.c.WriteFiles {
		if w.Path == pr {
			last = i
		}
	}
	if last < 0 {
		return
	}
	w := ck.c.WriteFiles[last]
	wp := fmt.Sprintf("write_files[%d]", last)
	data, err := w.Decode()
	if w.Append || w.Content == redactedText || err != nil {
		// Appended to a file cairn cannot see, printed by cairn validate
		// --print (its secrets redacted), or an error of its own.
		return
	}
	r, diags := parseRegistries(pr, data, builtin)
	for _, d := range diags {
		ck.keep(d)
	}
	if m, err := w.Mode(); err == nil && m&0o004 != 0 && len(r.Secrets()) > 0 {
		ck.add(Warning, wp+".permissions", []string{wp + ".permissions", wp + ".path"}, "%s writes the registries file %s, which holds credentials, readable by every user (mode %04o); give it permissions: \"0600\"", wp, pr, m.Perm())
	}
}

// Secrets are the registries' passwords, auths and identity tokens.
func (r *Registries) Secrets() []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, key := range sortedKeys(r.Configs) {
		if a := r.Configs[key].Auth; a != nil {
			for _, s := range []string{a.Password, a.Auth, a.IdentityToken} {
				if s != "" {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// registryCheck checks one registries document: the cloud-config's
// kubernetes.registries, or a private-registry file.
type registryCheck struct {
	// prefix starts every path: "kubernetes.registries." in the
	// cloud-config, nothing in a file of its own.
	prefix string
	// builtin says cairn's own containerd reads it: k3s's applies
	// rewrites and identity tokens, containerd v2.3.7 cannot.
	builtin bool
	// add reports a problem about path, located where the first of at
	// (or path itself) is set.
	add func(sev Severity, path string, at []string, msg string)
}

func (rc *registryCheck) errorf(path, format string, args ...any) {
	rc.add(Error, path, nil, message(format, args...))
}

func (rc *registryCheck) warnf(path, format string, args ...any) {
	rc.add(Warning, path, nil, message(format, args...))
}

func (rc *registryCheck) check(r *Registries) {
	if r == nil {
		return
	}
	for _, key := range sortedKeys(r.Mirrors) {
		m := r.Mirrors[key]
		p := rc.prefix + "mirrors." + key
		if msg := checkRegistryHost(key, "registry"); msg != "" {
			rc.errorf(p, "%s: %s", p, msg)
		}
		if len(m.Endpoints) == 0 && len(m.Rewrites) == 0 {
			rc.warnf(p, "%s has no endpoint, so it changes nothing; list the mirrors' URLs under endpoint", p)
		}
		seen := map[string]int{}
		for i, e := range m.Endpoints {
			ep := fmt.Sprintf("%s.endpoint[%d]", p, i)
			u, msg := ParseEndpoint(e)
			if msg != "" {
				rc.errorf(ep, "%s %s", ep, msg)
				continue
			}
			if j, dup := seen[u.String()]; dup {
				rc.warnf(ep, "%s %s is also endpoint[%d]; containerd tries it once", ep, u, j)
				continue
			}
			seen[u.String()] = i
			if c, ok := r.ConfigFor(u.Host); ok && c.Auth != nil && u.Scheme == "http" {
				rc.warnf(ep, "%s %s is plain http, and configs gives %s credentials: they cross the network unencrypted; use https://", ep, u, u.Host)
			}
		}
		if len(m.Rewrites) > 0 && rc.builtin {
			rc.errorf(p+".rewrite", "%s.rewrite: containerd v2.3.7 cannot rewrite repository names (k3s applies rewrites in its own containerd); remove rewrite and mirror the images under their own names, or set kubernetes.distribution: k3s", p)
		}
		for _, re := range sortedKeys(m.Rewrites) {
			rp := p + ".rewrite." + re
			if len(re) > maxRewrite {
				rc.errorf(rp, "%s.rewrite: the expression %q is longer than %d bytes", p, re, maxRewrite)
			} else if _, err := regexp.Compile(re); err != nil {
				rc.errorf(rp, "%s.rewrite: %q is not a regular expression (Go's syntax, as k3s reads it): %v", p, re, err)
			}
		}
	}
	for _, key := range sortedKeys(r.Configs) {
		c := r.Configs[key]
		p := rc.prefix + "configs." + key
		if msg := checkRegistryHost(key, "host"); msg != "" {
			rc.errorf(p, "%s: %s", p, msg)
		}
		if c.Auth != nil {
			rc.auth(p+".auth", c.Auth)
		}
		if c.TLS != nil {
			rc.tls(p+".tls", c.TLS)
		}
	}
}

// auth checks one host's credentials; no message shows a secret.
func (rc *registryCheck) auth(p string, a *RegistryAuth) {
	userPass := a.Username != "" || a.Password != ""
	switch {
	case !userPass && a.Auth == "" && a.IdentityToken == "":
		rc.errorf(p, "%s is empty; give username and password, or auth (the base64 of username:password)", p)
	case a.IdentityToken != "" && (userPass || a.Auth != ""):
		rc.errorf(p+".identitytoken", "%s has identitytoken and username, password or auth too; keep one way to log in", p)
	case a.Auth != "" && userPass:
		rc.errorf(p+".auth", "%s has auth and username or password too; keep one (auth is the base64 of username:password)", p)
	case a.Username == "" && a.Password != "":
		rc.errorf(p+".password", "%s has a password but no username; give both", p)
	case a.Username != "" && a.Password == "":
		rc.errorf(p+".username", "%s has a username but no password; give both", p)
	}
	if strings.Contains(a.Username, ":") {
		rc.errorf(p+".username", "%s.username %q contains a colon, which HTTP basic authentication cannot carry", p, a.Username)
	}
	if a.Auth != "" && a.Auth != redactedText && !isBasicAuth(a.Auth) {
		rc.errorf(p+".auth", "%s.auth is not the base64 of username:password (the value is a secret and is not shown); write it as `echo -n user:password | base64` prints it, or give username and password", p)
	}
	if a.IdentityToken != "" && rc.builtin {
		rc.errorf(p+".identitytoken", "%s.identitytoken: cairn gives containerd v2.3.7 a host's credentials as a header of its hosts.toml, which cannot carry an identity token; give username and password (or auth), or set kubernetes.distribution: k3s", p)
	}
}

// isBasicAuth reports whether s is the base64 of username:password.
func isBasicAuth(s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return false
	}
	user, _, ok := strings.Cut(string(b), ":")
	return ok && user != ""
}

// tls checks one host's TLS files.
func (rc *registryCheck) tls(p string, t *RegistryTLS) {
	for _, f := range []struct{ key, val string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		fp := p + "." + f.key
		switch {
		case f.val == "":
		case !strings.HasPrefix(f.val, "/"):
			rc.errorf(fp, "%s %q is relative; give an absolute path (write the file with write_files)", fp, f.val)
		case path.Clean(f.val) != f.val:
			rc.errorf(fp, "%s %q is not a clean file path; write it as %s", fp, f.val, path.Clean(f.val))
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		which, missing := "cert_file", "key_file"
		if t.CertFile == "" {
			which, missing = missing, which
		}
		rc.errorf(p+"."+which, "%s.%s is set without %s; a client certificate needs both", p, which, missing)
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		rc.warnf(p+".ca_file", "%s.ca_file is not used: insecure_skip_verify turns certificate verification off", p)
	}
}

// checkRegistryHost checks a key of mirrors (what is "registry") or
// configs ("host"): "*", or a host with an optional port, as image names
// spell registries. It returns what is wrong and the fix, or "".
func checkRegistryHost(s, what string) string {
	if s == "*" {
		return ""
	}
	if _, rest, ok := strings.Cut(s, "://"); ok {
		host, _, _ := strings.Cut(rest, "/")
		return fmt.Sprintf("%q is a URL; write the %s alone, like %s", s, what, short(host))
	}
	fix := `write a registry as image names spell it, like docker.io or registry.example.com:5000, or "*" for every registry`
	if what == "host" {
		fix = `write the host[:port] of a registry or of a mirror endpoint, like registry.example.com:5000, or "*" for every host`
	}
	if strings.Contains(s, "/") {
		return fmt.Sprintf("%q has a path; %s", s, fix)
	}
	if err := checkHostPort(s); err != nil {
		return fmt.Sprintf("%q is not a %s: %v; %s", s, what, err, fix)
	}
	host := s
	if h, _, err := net.SplitHostPort(s); err == nil {
		host = h
	}
	if !isHost(host) {
		return fmt.Sprintf("%q is not a %s: %q is not a DNS name or IP address; %s", s, what, host, fix)
	}
	return ""
}

// ParseEndpoint parses a mirror endpoint: an http:// or https:// URL with
// a host, an optional port and an optional path, nothing else. msg says
// what is wrong ("" when nothing is), never showing a password the URL
// carries.
func ParseEndpoint(e string) (u *url.URL, msg string) {
	shown := shownEndpoint(e)
	for _, c := range e {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return nil, fmt.Sprintf("%s has a character a URL cannot hold (a space, a quote, a backslash, a control or non-ASCII character); percent-encode it", shown)
		}
	}
	u, err := url.Parse(e)
	switch {
	case err == nil && u.Host != "" && u.Opaque == "":
	case !strings.Contains(e, "://"):
		return nil, fmt.Sprintf("%s is not a URL; write it with its scheme, like https://%s", shown, strings.Trim(shown, `"`))
	default:
		return nil, fmt.Sprintf("%s is not a URL like https://mirror.example.com:5000", shown)
	}
	switch {
	case u.User != nil:
		return nil, fmt.Sprintf("%s carries a user name or password; put them under configs.%s.auth", shown, u.Host)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Sprintf("%s uses %s://; containerd reaches mirrors over http:// or https:// only", shown, u.Scheme)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Sprintf("%s has a query or a fragment; a mirror is scheme://host[:port][/path]", shown)
	}
	if err := checkHostPort(u.Host); err != nil {
		return nil, fmt.Sprintf("%s: %v", shown, err)
	}
	if host := u.Hostname(); !isHost(host) {
		return nil, fmt.Sprintf("%s: %q is not a DNS name or IP address", shown, host)
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, ""
}

// shownEndpoint quotes an endpoint for a message, its user information
// (which may hold a password) replaced by <redacted>.
func shownEndpoint(e string) string {
	if at := strings.LastIndex(e, "@"); at >= 0 {
		start := len(schemeRe.FindString(e))
		if start > at {
			start = 0
		}
		e = e[:start] + redactedText + e[at:]
	}
	return strconv.Quote(e)
}

var schemeRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// ConfigFor is host's entry of configs (host names compare in any case).
// The "*" entry is not host's: it is the config of the registries that
// have no entry of their own under mirrors or configs.
func (r *Registries) ConfigFor(host string) (RegistryConfig, bool) {
	if r == nil {
		return RegistryConfig{}, false
	}
	if c, ok := r.Configs[host]; ok {
		return c, true
	}
	for _, key := range sortedKeys(r.Configs) {
		if strings.EqualFold(key, host) {
			return r.Configs[key], true
		}
	}
	return RegistryConfig{}, false
}
