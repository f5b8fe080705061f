package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// mustMatch are the keys every server of a cluster must set alike: the
// first server records them, and a server that disagrees refuses to start
// (secrets-encryption, datastore-endpoint and vip are checked here only:
// a server reads Secrets with every key whatever its own setting).
var mustMatch = []string{
	"cluster-cidr", "service-cidr", "cluster-dns", "cluster-domain", "disable",
	"secrets-encryption", "datastore-endpoint", "vip", "flannel-backend",
}

// CheckCluster checks the configs of one cluster's nodes together, each
// loaded from its own file without errors: every key of mustMatch equal on
// all servers, one token, and agents (and joining servers) pointing at an
// address the servers serve. Diagnostics name both files and lines.
func CheckCluster(nodes []*Config) Diagnostics {
	var col collector
	var servers []*Config
	for _, c := range nodes {
		if c.Kubernetes.Role != "agent" {
			servers = append(servers, c)
		}
	}
	report := func(c *Config, sev Severity, key, format string, args ...any) {
		p := c.at("kubernetes." + key)
		col.keep(Diagnostic{File: p.File, Line: p.Line, Column: p.Column, Severity: sev,
			Path: "kubernetes." + key, Message: message(format, args...)})
	}
	if len(servers) == 0 {
		if len(nodes) == 0 {
			return nil
		}
		p := nodes[0].at("kubernetes.role")
		return Diagnostics{{File: p.File, Line: p.Line, Column: p.Column, Severity: Error, Path: "kubernetes.role",
			Message: "no server among the configs of the cluster; give the servers' configs too, so that the agents are checked against them"}}
	}

	// Keys every server sets alike.
	first := servers[0]
	for _, key := range mustMatch {
		want := first.clusterValue(key)
		for _, s := range servers[1:] {
			if got := s.clusterValue(key); got != want {
				report(s, Error, key, "kubernetes.%s is %s here but %s in %s; servers of one cluster must agree on it: set the same value in every server's config",
					key, s.shown(key, got), first.shown(key, want), first.where("kubernetes."+key))
			}
		}
	}

	// One token. The value is a secret: only where it is set is printed.
	var tokenFrom *Config
	for _, c := range nodes {
		tok, ok := c.clusterToken()
		if !ok {
			continue
		}
		if tokenFrom == nil {
			tokenFrom = c
			continue
		}
		if want, _ := tokenFrom.clusterToken(); tok != want {
			report(c, Error, c.tokenKey(), "the token here differs from the one in %s; every node of a cluster joins with the same token",
				tokenFrom.where("kubernetes."+tokenFrom.tokenKey()))
		}
	}

	// Agents and joining servers point at what the servers serve.
	served := map[string]bool{}
	var servedList []string
	serve := func(host string) {
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		if host != "" && !served[host] {
			served[host] = true
			servedList = append(servedList, host)
		}
	}
	for _, s := range servers {
		k := s.Kubernetes
		serve(k.VIP)
		for _, san := range k.TLSSAN {
			serve(san)
		}
		for _, a := range s.nodeNetwork().addrs {
			serve(a.ip.String())
		}
		if k.NodeIP != "" {
			for _, ip := range strings.Split(k.NodeIP, ",") {
				serve(strings.TrimSpace(ip))
			}
		}
		serve(k.NodeName)
		serve(s.Hostname)
	}
	for _, c := range nodes {
		if c.Kubernetes.Server == "" {
			continue
		}
		u, err := url.Parse(c.Kubernetes.Server)
		if err != nil {
			continue
		}
		host, port := u.Hostname(), u.Port()
		if ip := net.ParseIP(host); ip != nil {
			host = ip.String()
		}
		switch {
		case !served[strings.ToLower(host)] && !servedWildcard(servedList, host):
			report(c, Error, "server", "kubernetes.server %s is not an address the servers serve (%s); point it at the servers' vip",
				c.Kubernetes.Server, strings.Join(servedList, ", "))
		case port != "" && port != strconv.Itoa(APIServerPort):
			report(c, Error, "server", "kubernetes.server %s uses port %s, but servers serve the API on %d", c.Kubernetes.Server, port, APIServerPort)
		}
	}
	ds := col.diags
	sortDiags(ds, fileNames(nodes))
	return capped(ds, col.dropped, col.droppedErr)
}

// servedWildcard reports whether host matches a *.domain tls-san.
func servedWildcard(served []string, host string) bool {
	host = strings.ToLower(host)
	for _, s := range served {
		if rest, ok := strings.CutPrefix(s, "*."); ok {
			if _, after, found := strings.Cut(host, "."); found && after == rest {
				return true
			}
		}
	}
	return false
}

func fileNames(nodes []*Config) []string {
	var out []string
	for _, c := range nodes {
		if n := len(c.files); n > 0 {
			out = append(out, c.files[n-1])
		}
	}
	return out
}

// at is where path was set in c, or c's file when it was not.
func (c *Config) at(path string) pos {
	ck := checker{c: c}
	return ck.locate(path)
}

// where names the file and line that set path, for a message about
// another file.
func (c *Config) where(path string) string {
	p := c.at(path)
	if _, set := c.locs[path]; !set || p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// clusterValue is key's value in a form that compares equal when two
// servers mean the same.
func (c *Config) clusterValue(key string) string {
	k := c.Kubernetes
	switch key {
	case "cluster-cidr", "service-cidr":
		v := k.ClusterCIDR
		if key == "service-cidr" {
			v = k.ServiceCIDR
		}
		if nets, _, err := parseCIDRs(v); err == nil {
			var s []string
			for _, n := range nets {
				s = append(s, n.String())
			}
			return strings.Join(s, ",")
		}
		return v
	case "cluster-dns":
		return strings.ReplaceAll(k.ClusterDNS, " ", "")
	case "cluster-domain":
		return strings.ToLower(strings.TrimSuffix(k.ClusterDomain, "."))
	case "disable":
		d := slices.Clone(k.Disable)
		slices.Sort(d)
		return strings.Join(slices.Compact(d), ",")
	case "secrets-encryption":
		return strconv.FormatBool(k.EncryptSecrets())
	case "datastore-endpoint":
		return strings.TrimSpace(k.DatastoreEndpoint)
	case "vip":
		if ip := net.ParseIP(k.VIP); ip != nil {
			return ip.String()
		}
		return k.VIP
	}
	return ""
}

// shown is a clusterValue as a message prints it: never a password, and
// saying when the value is a default.
func (c *Config) shown(key, v string) string {
	switch {
	case key == "datastore-endpoint" && v == "":
		return "empty (embedded etcd)"
	case key == "datastore-endpoint":
		v = redactEndpoint(v)
	case v == "":
		return "empty"
	}
	if _, set := c.locs["kubernetes."+key]; !set {
		return v + " (the default)"
	}
	return v
}

// clusterToken is the node's token: token, or the content of a write_files
// entry that writes token-file; ok is false when the config holds neither.
func (c *Config) clusterToken() (tok string, ok bool) {
	k := c.Kubernetes
	if k.Token != "" {
		return k.Token, true
	}
	if k.TokenFile == "" {
		return "", false
	}
	for _, w := range slices.Backward(c.WriteFiles) {
		if w.Path == k.TokenFile {
			if b, err := w.Decode(); err == nil {
				return strings.TrimSpace(string(b)), true
			}
		}
	}
	return "", false
}

// tokenKey is the key the node's token comes from.
func (c *Config) tokenKey() string {
	if c.Kubernetes.Token == "" && c.Kubernetes.TokenFile != "" {
		return "token-file"
	}
	return "token"
}
