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
// agent-token is one too, checked with the tokens: its value is a secret.
var mustMatch = []string{
	"cluster-cidr", "service-cidr", "cluster-dns", "cluster-domain", "disable",
	"secrets-encryption", "datastore-endpoint", "vip", "flannel-backend",
	"loadbalancer-pool", "default-local-storage-path",
}

// CheckCluster checks the configs of one cluster's nodes together, each
// loaded from its own file without errors: every key of mustMatch equal on
// all servers, one token and one agent-token on the servers, agents
// joining with the servers' agent-token (their token when they have
// none), and agents (and joining servers) pointing at an address the
// servers serve. Diagnostics name both files and lines.
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

	// The tokens. Their values are secrets: only where they are set is
	// printed. The servers share the token and the agent-token (all none,
	// or all the same one); an agent joins with the servers' agent-token,
	// or their token when they have none, whichever key it is under (k3s
	// agents give the agent token as token).
	tokenFrom := firstWith(servers, "token")
	agentFrom := firstWith(servers, "agent-token")
	for _, c := range servers {
		if c == tokenFrom {
			continue
		}
		if tok, _, ok := c.tokenOf("token"); ok {
			if is, known := tokenFrom.tokenIs("token", tok); known && !is {
				report(c, Error, c.tokenKeyOf("token"), "the token here differs from the one in %s; servers of one cluster share it: set the same token in every server's config",
					tokenFrom.where("kubernetes."+tokenFrom.tokenKeyOf("token")))
			}
		}
	}
	for _, c := range servers {
		if agentFrom == nil || c == agentFrom {
			continue
		}
		tok, set, ok := c.tokenOf("agent-token")
		if !set {
			report(c, Error, "agent-token", "there is no agent-token here, but %s sets one; servers of one cluster share it: set the same agent-token (or agent-token-file) in every server's config",
				agentFrom.where("kubernetes."+agentFrom.tokenKeyOf("agent-token")))
			continue
		}
		if is, known := agentFrom.tokenIs("agent-token", tok); ok && known && !is {
			report(c, Error, c.tokenKeyOf("agent-token"), "the agent-token here differs from the one in %s; servers of one cluster share it: set the same agent-token in every server's config",
				agentFrom.where("kubernetes."+agentFrom.tokenKeyOf("agent-token")))
		}
	}
	for _, c := range nodes {
		if c.Kubernetes.Role != "agent" {
			continue
		}
		key := "agent-token"
		tok, set, ok := c.tokenOf(key)
		if !set {
			key = "token"
			tok, _, ok = c.tokenOf(key)
		}
		if !ok {
			continue
		}
		isServers, serversKnown := tokenFrom.tokenIs("token", tok)
		if agentFrom == nil {
			if serversKnown && !isServers {
				report(c, Error, c.tokenKeyOf(key), "the %s here is not the servers' token (%s); the servers have no agent-token, so an agent joins with their token",
					key, tokenFrom.where("kubernetes."+tokenFrom.tokenKeyOf("token")))
			}
			continue
		}
		isAgents, agentsKnown := agentFrom.tokenIs("agent-token", tok)
		switch {
		case isAgents:
		case isServers:
			report(c, Error, c.tokenKeyOf(key), "the %s here is the servers' token, but the servers have an agent-token (%s) and agents join with it: give this agent that agent-token, and keep the server token off agents",
				key, agentFrom.where("kubernetes."+agentFrom.tokenKeyOf("agent-token")))
		case agentsKnown:
			report(c, Error, c.tokenKeyOf(key), "the %s here is not the servers' agent-token (%s); an agent joins with the servers' agent-token",
				key, agentFrom.where("kubernetes."+agentFrom.tokenKeyOf("agent-token")))
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
	case "loadbalancer-pool":
		// In order: the pool's addresses are handed out in it.
		if p, err := k.Pool(); err == nil {
			return p.String()
		}
		return strings.Join(k.LoadBalancerPool, ",")
	case "default-local-storage-path":
		return k.LocalStoragePath()
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

// firstWith is the first of nodes whose token of key (token or
// agent-token) is set, nil when none has one.
func firstWith(nodes []*Config, key string) *Config {
	for _, c := range nodes {
		if _, set, _ := c.tokenOf(key); set {
			return c
		}
	}
	return nil
}

// tokenIs says whether c's token of key (token or agent-token) is tok,
// when c is not nil and its token is known here (known is false when not).
func (c *Config) tokenIs(key, tok string) (is, known bool) {
	if c == nil {
		return false, false
	}
	theirs, _, known := c.tokenOf(key)
	return known && tokenSecret(tok) == tokenSecret(theirs), known
}

// tokenSecret is a token's secret: all of a plain token, the part after
// "::server:" of a K10 token (the one secret written two ways).
func tokenSecret(tok string) string {
	if rest, ok := strings.CutPrefix(tok, "K10"); ok {
		if _, cred, ok := strings.Cut(rest, "::"); ok {
			if _, secret, ok := strings.Cut(cred, ":"); ok {
				return secret
			}
		}
	}
	return tok
}

// tokenOf is the node's token of key, token or agent-token: its value, or
// the content of a write_files entry that writes its file (key-file).
// set says whether the config gives one at all, known whether its value
// is in the config.
func (c *Config) tokenOf(key string) (tok string, set, known bool) {
	val, file := c.tokenKeys(key)
	if val != "" {
		return val, true, true
	}
	if file == "" {
		return "", false, false
	}
	for _, w := range slices.Backward(c.WriteFiles) {
		if w.Path == file {
			if b, err := w.Decode(); err == nil {
				return strings.TrimSpace(string(b)), true, true
			}
		}
	}
	return "", true, false
}

// tokenKeys are the values of key (token or agent-token) and key-file.
func (c *Config) tokenKeys(key string) (val, file string) {
	if key == "agent-token" {
		return c.Kubernetes.AgentToken, c.Kubernetes.AgentTokenFile
	}
	return c.Kubernetes.Token, c.Kubernetes.TokenFile
}

// tokenKeyOf is the key the node's token of key (token or agent-token)
// comes from: key, or key-file.
func (c *Config) tokenKeyOf(key string) string {
	if val, file := c.tokenKeys(key); val == "" && file != "" {
		return key + "-file"
	}
	return key
}
