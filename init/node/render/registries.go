package render

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-os/cairn/config"
)

// RegistryHostsDir is containerd's config_path: one directory per
// registry holding its hosts.toml, named as containerd looks them up
// (registry.example.com_5000_ for registry.example.com:5000), and
// _default for the registries that have none.
const RegistryHostsDir = "/etc/containerd/certs.d"

// dockerHub is the registry image names without one come from, and
// dockerHubHost where containerd pulls it from.
const (
	dockerHub     = "docker.io"
	dockerHubHost = "registry-1.docker.io"
)

// RegistryHosts renders the hosts.toml files of r, the k3s registries.yaml
// way on containerd v2.3.7's hosts.toml format:
//
//   - a registry under mirrors gets a directory whose [host."URL"] entries
//     are its endpoints, tried in order with capabilities pull and
//     resolve; an endpoint with a path (other than /v2) is the API root as
//     written (override_path);
//   - the registry itself is the server, tried last, unless noDefault
//     (disable-default-registry-endpoint) or the endpoints already name
//     it: then the last endpoint is the server and nothing follows it;
//   - "*" under mirrors is the _default directory: the endpoints of every
//     registry without a directory of its own;
//   - configs gives each host (an endpoint's, or the registry's own) its
//     TLS files (ca, client, skip_verify) and its credentials, as an
//     Authorization header of basic authentication: containerd sends it to
//     that host and to the token service the host sends it to, the way
//     docker login credentials go. A host under configs that is no
//     registry under mirrors gets a directory too (itself, with its
//     config); "*" under configs is _default's server's config.
//
// A directory that would say only what containerd does anyway is left
// out. Every file is mode 0600, since any may hold credentials. An
// identity token cannot be written this way and is an error (config
// validation refuses it first).
func RegistryHosts(r *config.Registries, noDefault bool) ([]File, error) {
	if r == nil {
		return nil, nil
	}
	names := slices.Concat(slices.Collect(maps.Keys(r.Mirrors)), slices.Collect(maps.Keys(r.Configs)))
	slices.Sort(names)
	names = slices.DeleteFunc(slices.Compact(names), func(n string) bool { return n == "*" })
	names = append(names, "*")
	var out []File
	for _, name := range names {
		data, err := hostsTOML(r, name, r.Mirrors[name].Endpoints, noDefault)
		if err != nil {
			return nil, err
		}
		if data == nil {
			continue
		}
		dir := hostDirectory(name)
		if name == "*" {
			dir = "_default"
		}
		out = append(out, File{Path: filepath.Join(RegistryHostsDir, dir, "hosts.toml"), Mode: 0o600, Data: data})
	}
	return out, nil
}

// registryHost is one entry of a hosts.toml.
type registryHost struct {
	// url is scheme://host[/path]; empty for the registry pulled, as
	// containerd finds it by itself (in _default).
	url      string
	override bool
	mirror   bool
	cfg      config.RegistryConfig
}

// hostsTOML renders the hosts.toml of registry name ("*": _default).
func hostsTOML(r *config.Registries, name string, endpoints []string, noDefault bool) ([]byte, error) {
	upstream := ""
	if name != "*" {
		upstream = upstreamURL(name)
	}
	var hosts []registryHost
	listed, upstreamListed := map[string]bool{}, false
	for _, e := range endpoints {
		u, msg := config.ParseEndpoint(e)
		if msg != "" {
			return nil, fmt.Errorf("rendering the hosts of registry %s: endpoint %s", name, msg)
		}
		h := registryHost{mirror: true, url: u.Scheme + "://" + u.Host}
		if u.Path != "" && u.Path != "/v2" {
			h.url, h.override = u.String(), true
		}
		if listed[h.url] {
			continue
		}
		listed[h.url] = true
		if !h.override && upstream != "" && strings.EqualFold(u.Host, hostOf(upstream)) {
			upstreamListed = true
		}
		h.cfg, _ = r.ConfigFor(u.Host)
		hosts = append(hosts, h)
	}
	var server registryHost
	switch {
	case len(hosts) > 0 && (noDefault || upstreamListed):
		server, hosts = hosts[len(hosts)-1], hosts[:len(hosts)-1]
	case upstream != "":
		server.url = upstream
		var ok bool
		if server.cfg, ok = r.ConfigFor(hostOf(upstream)); !ok {
			server.cfg, _ = r.ConfigFor(name)
		}
	default:
		server.cfg = r.Configs["*"]
	}
	if len(hosts) == 0 && !server.mirror && server.cfg.Auth == nil && server.cfg.TLS == nil {
		// Nothing containerd would not do by itself.
		return nil, nil
	}

	var b strings.Builder
	what := "Registry " + name
	if name == "*" {
		what = "Every other registry"
	}
	fmt.Fprintf(&b, "# %s (written by cairn from the registries config).\n", what)
	switch {
	case len(hosts) == 0:
	case server.url == "":
		b.WriteString("# containerd tries each [host] in order, then the registry itself.\n")
	default:
		b.WriteString("# containerd tries each [host] in order, then server.\n")
	}
	if server.url != "" {
		fmt.Fprintf(&b, "server = %s\n", tomlString(server.url))
	}
	if err := writeHostKeys(&b, "", "", server); err != nil {
		return nil, err
	}
	for _, h := range hosts {
		table := "host." + tomlString(h.url)
		fmt.Fprintf(&b, "\n[%s]\n", table)
		if err := writeHostKeys(&b, table, "  ", h); err != nil {
			return nil, err
		}
	}
	return []byte(b.String()), nil
}

// writeHostKeys writes h's settings at indent, and its header as the
// subtable of table ("" for the top level).
func writeHostKeys(b *strings.Builder, table, indent string, h registryHost) error {
	if h.mirror {
		fmt.Fprintf(b, "%scapabilities = [\"pull\", \"resolve\"]\n", indent)
	}
	if t := h.cfg.TLS; t != nil {
		if t.CAFile != "" {
			fmt.Fprintf(b, "%sca = %s\n", indent, tomlString(t.CAFile))
		}
		if t.CertFile != "" {
			fmt.Fprintf(b, "%sclient = [[%s, %s]]\n", indent, tomlString(t.CertFile), tomlString(t.KeyFile))
		}
		if t.InsecureSkipVerify {
			fmt.Fprintf(b, "%sskip_verify = true\n", indent)
		}
	}
	if h.override {
		fmt.Fprintf(b, "%soverride_path = true\n", indent)
	}
	auth, err := basicAuth(h.cfg.Auth)
	if err != nil {
		return err
	}
	if auth != "" {
		sub := "header"
		if table != "" {
			sub = table + ".header"
		}
		if table == "" {
			b.WriteString("\n")
		}
		fmt.Fprintf(b, "%s[%s]\n%s  Authorization = %s\n", indent, sub, indent, tomlString(auth))
	}
	return nil
}

// basicAuth is the Authorization header of a's credentials, "" for none.
func basicAuth(a *config.RegistryAuth) (string, error) {
	switch {
	case a == nil:
		return "", nil
	case a.IdentityToken != "":
		return "", fmt.Errorf("rendering containerd's registry hosts: an identity token cannot be given to containerd v2.3.7 in hosts.toml; use username and password")
	case a.Auth != "":
		return "Basic " + a.Auth, nil
	case a.Username != "":
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password)), nil
	}
	return "", nil
}

// minRegistrySecret is the shortest registry secret checkNoSecrets looks
// for: a shorter password could match a constant argument by chance and
// keep containerd from starting.
const minRegistrySecret = 8

// registrySecrets are what of r must never reach a command line or an
// environment: its secrets and the headers made of them.
func registrySecrets(r *config.Registries) []string {
	all := r.Secrets()
	if r != nil {
		for _, c := range r.Configs {
			if h, _ := basicAuth(c.Auth); h != "" {
				all = append(all, strings.TrimPrefix(h, "Basic "))
			}
		}
	}
	return slices.DeleteFunc(all, func(s string) bool { return len(s) < minRegistrySecret })
}

// upstreamURL is where containerd pulls registry name from by itself:
// docker.io from registry-1.docker.io, localhost on a port other than 443
// over http, everything else over https.
func upstreamURL(name string) string {
	if name == dockerHub {
		return "https://" + dockerHubHost
	}
	host, port, err := net.SplitHostPort(name)
	if err != nil {
		host = name
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		if port != "" && port != "443" {
			return "http://" + name
		}
	}
	return "https://" + name
}

func hostOf(u string) string {
	_, rest, _ := strings.Cut(u, "://")
	host, _, _ := strings.Cut(rest, "/")
	return host
}

// hostDirectory is containerd's directory name for a registry: a port
// ":5000" becomes "_5000_".
func hostDirectory(host string) string {
	if i := strings.LastIndex(host, ":"); i > 0 && !strings.HasSuffix(host, "]") {
		return host[:i] + "_" + host[i+1:] + "_"
	}
	return host
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
