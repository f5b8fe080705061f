package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	clusterjoin "github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/layout"
)

// checker collects the diagnostics of one merged config.
type checker struct {
	c *Config
	collector
}

// locate finds where the first of paths (or its nearest parent) was set.
func (ck *checker) locate(paths ...string) pos {
	for _, p := range paths {
		for q := p; q != ""; q = parentPath(q) {
			if l, ok := ck.c.locs[q]; ok {
				return l
			}
		}
	}
	f := ""
	if n := len(ck.c.files); n > 0 {
		f = ck.c.files[n-1]
	}
	return pos{File: f}
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// add reports a problem about path, located at the first of at (or at
// path itself when at is empty).
func (ck *checker) add(sev Severity, path string, at []string, format string, args ...any) {
	l := ck.locate(append(append([]string{}, at...), path)...)
	ck.keep(Diagnostic{File: l.File, Line: l.Line, Column: l.Column,
		Severity: sev, Path: path, Message: message(format, args...)})
}

func (ck *checker) errorf(path, format string, args ...any) {
	ck.add(Error, path, nil, format, args...)
}

func (ck *checker) warnf(path, format string, args ...any) {
	ck.add(Warning, path, nil, format, args...)
}

func (ck *checker) set(path string) bool {
	_, ok := ck.c.locs[path]
	return ok
}

// validate checks the merged, defaulted config and reports every problem.
func (c *Config) validate() collector {
	if c.locs == nil {
		c.locs = map[string]pos{}
	}
	ck := &checker{c: c}
	ck.hostname()
	ck.writeFiles()
	ck.ntp()
	ck.sysctl()
	ck.network()
	ck.kubernetes()
	return ck.collector
}

// Validate checks a config built in code (not by Load), after filling
// defaults. Diagnostics carry no location.
func (c *Config) Validate() Diagnostics {
	cp := c.clone()
	cp.fillDefaults()
	vc := cp.validate()
	return capped(vc.diags, vc.dropped, vc.droppedErr)
}

var (
	labelRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// qualNameRe is the name part of a Kubernetes label key, and a label value.
	qualNameRe = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	ownerRe    = regexp.MustCompile(`^([a-z_][a-z0-9_-]*\$?|[0-9]+)(:([a-z_][a-z0-9_-]*\$?|[0-9]+))?$`)
	sysctlRe   = regexp.MustCompile(`^[a-z0-9_]+([./][A-Za-z0-9_@:-]+)+$`)
	argNameRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

// isDNSName reports whether s is a DNS-1123 subdomain (lowercase labels
// joined by dots, at most 253 characters).
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) > 63 || !labelRe.MatchString(l) {
			return false
		}
	}
	return true
}

func (ck *checker) hostname() {
	h := ck.c.Hostname
	if h == "" {
		return
	}
	if len(h) > 64 || !isDNSName(strings.ToLower(h)) {
		ck.errorf("hostname", "hostname %q is not a valid host name: use letters, digits and hyphens in dot-separated labels, at most 64 characters", h)
	}
}

func (ck *checker) writeFiles() {
	seen := map[string]int{}
	for i, w := range ck.c.WriteFiles {
		p := fmt.Sprintf("write_files[%d]", i)
		switch {
		case w.Path == "":
			ck.errorf(p, "%s has no path; give the absolute path of the file to write", p)
		case !strings.HasPrefix(w.Path, "/"):
			ck.errorf(p+".path", "%s.path %q is relative; write files by absolute path, like /%s", p, w.Path, w.Path)
		case path.Clean(w.Path) != w.Path || w.Path == "/":
			ck.errorf(p+".path", "%s.path %q is not a clean file path; write it as %s", p, w.Path, path.Clean(w.Path))
		default:
			if j, ok := seen[w.Path]; ok && !w.Append {
				ck.warnf(p+".path", "%s.path %s is also written by write_files[%d]; this later entry wins", p, w.Path, j)
			}
			seen[w.Path] = i
		}
		if _, ok := encodings[strings.ToLower(w.Encoding)]; !ok {
			ck.errorf(p+".encoding", "%s.encoding %q is not one of text, b64, base64, gzip, gz, gz+b64, gzip+base64, gz+base64", p, w.Encoding)
		} else if _, err := w.Decode(); err != nil {
			ck.errorf(p+".content", "%s.content: %v", p, err)
		}
		if _, err := w.Mode(); err != nil {
			ck.errorf(p+".permissions", "%s.%v", p, err)
		}
		if w.Owner != "" && !ownerRe.MatchString(w.Owner) {
			ck.errorf(p+".owner", "%s.owner %q is not user:group (names or numbers, like root:root or 1000:1000)", p, w.Owner)
		}
	}
}

// isHost accepts an IP address or a DNS name.
func isHost(s string) bool {
	return net.ParseIP(s) != nil || isDomain(s)
}

// isDomain accepts a DNS name in any case, with or without a trailing dot.
func isDomain(s string) bool {
	return isDNSName(strings.ToLower(strings.TrimSuffix(s, ".")))
}

func (ck *checker) ntp() {
	n := ck.c.NTP
	if n == nil {
		return
	}
	for key, list := range map[string][]string{"servers": n.Servers, "pools": n.Pools} {
		for i, s := range list {
			p := fmt.Sprintf("ntp.%s[%d]", key, i)
			if !isHost(s) {
				ck.errorf(p, "%s %q is not a host name or IP address", p, s)
			}
		}
	}
}

func (ck *checker) sysctl() {
	for _, k := range sortedKeys(ck.c.Sysctl) {
		p := "sysctl." + k
		if !sysctlRe.MatchString(k) || strings.Contains(k, "..") {
			ck.errorf(p, "sysctl %q is not a sysctl name like net.ipv4.ip_forward", k)
		}
		if strings.TrimSpace(ck.c.Sysctl[k]) == "" {
			ck.errorf(p, "sysctl %s has no value", k)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var bondModes = map[string]bool{
	"balance-rr": true, "active-backup": true, "balance-xor": true, "broadcast": true,
	"802.3ad": true, "balance-tlb": true, "balance-alb": true,
}

var bondParams = map[string]bool{
	"mode": true, "mii-monitor-interval": true, "primary": true, "lacp-rate": true,
	"transmit-hash-policy": true, "up-delay": true, "down-delay": true, "ad-select": true,
	"arp-interval": true, "arp-ip-targets": true, "arp-validate": true, "arp-all-targets": true,
	"fail-over-mac-policy": true, "gratuitous-arp": true, "all-members-active": true,
	"min-links": true, "primary-reselect-policy": true, "learn-packet-interval": true,
	"packets-per-member": true, "resend-igmp": true,
}

func validIfName(s string) bool {
	return s != "" && len(s) <= 15 && !strings.ContainsAny(s, "/: \t\n") && s != "." && s != ".."
}

func (ck *checker) network() {
	nw := ck.c.Network
	if nw == nil {
		return
	}
	// Links that other links use carry no addresses of their own.
	member := map[string]string{}
	vlanLink := map[string]bool{}
	for _, name := range sortedKeys(nw.Bonds) {
		b := nw.Bonds[name]
		p := "network.bonds." + name
		if len(b.Interfaces) == 0 {
			ck.errorf(p, "%s has no interfaces; list the ethernets it aggregates", p)
		}
		for i, m := range b.Interfaces {
			ip := fmt.Sprintf("%s.interfaces[%d]", p, i)
			if _, ok := nw.Ethernets[m]; !ok {
				ck.errorf(ip, "%s %q is not an interface under network.ethernets", ip, m)
			}
			if other, ok := member[m]; ok && other != name {
				ck.errorf(ip, "%s: %s is already a member of bond %s", ip, m, other)
			}
			member[m] = name
		}
		for _, k := range sortedKeys(b.Parameters) {
			kp := p + ".parameters." + k
			if !bondParams[k] {
				ck.errorf(kp, "unknown bond parameter %q in %s.parameters", k, p)
			}
		}
		if mode, ok := b.Parameters["mode"]; ok && !bondModes[mode] {
			ck.errorf(p+".parameters.mode", "%s.parameters.mode %q is not one of balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb", p, mode)
		}
		if pr, ok := b.Parameters["primary"]; ok && !slices.Contains(b.Interfaces, pr) {
			ck.errorf(p+".parameters.primary", "%s.parameters.primary %q is not one of the bond's interfaces", p, pr)
		}
	}
	for _, name := range sortedKeys(nw.VLANs) {
		v := nw.VLANs[name]
		p := "network.vlans." + name
		if v.ID < 1 || v.ID > 4094 {
			ck.add(Error, p+".id", []string{p + ".id", p}, "%s.id %d is not a VLAN id from 1 to 4094", p, v.ID)
		}
		_, isEth := nw.Ethernets[v.Link]
		_, isBond := nw.Bonds[v.Link]
		if v.Link == "" {
			ck.errorf(p, "%s has no link; name the ethernet or bond it runs on", p)
		} else if !isEth && !isBond {
			ck.errorf(p+".link", "%s.link %q is not an interface under network.ethernets or network.bonds", p, v.Link)
		}
		vlanLink[v.Link] = true
	}
	names := map[string]string{}
	claim := func(kind, name string) {
		p := "network." + kind + "." + name
		if other, ok := names[name]; ok {
			ck.errorf(p, "%s: the name %q is also used under network.%s", p, name, other)
		}
		names[name] = kind
	}
	for _, name := range sortedKeys(nw.Ethernets) {
		e := nw.Ethernets[name]
		p := "network.ethernets." + name
		claim("ethernets", name)
		if e.Match != nil {
			if e.Match.MACAddress != "" {
				if hw, err := net.ParseMAC(e.Match.MACAddress); err != nil || len(hw) != 6 {
					ck.errorf(p+".match.macaddress", "%s.match.macaddress %q is not a MAC address like 52:54:00:12:34:56", p, e.Match.MACAddress)
				}
			}
			if e.Match.Name != "" {
				if _, err := path.Match(e.Match.Name, ""); err != nil {
					ck.errorf(p+".match.name", "%s.match.name %q is not a valid glob", p, e.Match.Name)
				}
			}
			if e.Match.MACAddress == "" && e.Match.Name == "" {
				ck.errorf(p+".match", "%s.match is empty; give macaddress or name, or drop match to use %q as the interface name", p, name)
			}
		} else if !validIfName(name) {
			ck.errorf(p, "%s: %q is not a Linux interface name (at most 15 characters, no / or spaces); add a match", p, name)
		}
		if e.SetName != "" {
			if !validIfName(e.SetName) {
				ck.errorf(p+".set-name", "%s.set-name %q is not a Linux interface name (at most 15 characters, no / or spaces)", p, e.SetName)
			}
			if e.Match == nil {
				ck.errorf(p+".set-name", "%s.set-name needs a match to say which link to rename", p)
			}
		}
		used := member[name] != "" || vlanLink[name]
		ck.iface(p, e.Interface, used)
	}
	virtual := func(kind, name string, in Interface, used bool) {
		claim(kind, name)
		p := "network." + kind + "." + name
		if !validIfName(name) {
			ck.errorf(p, "%s: %q is not a Linux interface name (at most 15 characters, no / or spaces)", p, name)
		}
		ck.iface(p, in, used)
	}
	for _, name := range sortedKeys(nw.VLANs) {
		virtual("vlans", name, nw.VLANs[name].Interface, false)
	}
	for _, name := range sortedKeys(nw.Bonds) {
		virtual("bonds", name, nw.Bonds[name].Interface, vlanLink[name])
	}
}

// iface checks addressing; used says another link runs on this one, so it
// may go without addresses.
func (ck *checker) iface(p string, in Interface, used bool) {
	if !in.DHCP4 && len(in.Addresses) == 0 && !used {
		ck.errorf(p, "%s has neither dhcp4: true nor addresses; give it one or the other", p)
	}
	for i, a := range in.Addresses {
		ap := fmt.Sprintf("%s.addresses[%d]", p, i)
		if _, _, err := net.ParseCIDR(a); err != nil {
			ck.errorf(ap, "%s %q is not an address with a prefix length, like 192.168.1.11/24", ap, a)
		}
	}
	if in.Gateway4 != "" {
		if ip := net.ParseIP(in.Gateway4); ip == nil || ip.To4() == nil {
			ck.errorf(p+".gateway4", "%s.gateway4 %q is not an IPv4 address", p, in.Gateway4)
		}
	}
	for i, r := range in.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", p, i)
		if r.To != "default" {
			if _, _, err := net.ParseCIDR(r.To); err != nil {
				ck.add(Error, rp+".to", []string{rp + ".to", rp}, "%s.to %q is not \"default\" or a destination like 10.0.0.0/8", rp, r.To)
			}
		}
		if net.ParseIP(r.Via) == nil {
			ck.add(Error, rp+".via", []string{rp + ".via", rp}, "%s.via %q is not the IP address of a gateway", rp, r.Via)
		}
		if r.Metric < 0 {
			ck.errorf(rp+".metric", "%s.metric %d is negative", rp, r.Metric)
		}
	}
	if ns := in.Nameservers; ns != nil {
		for i, a := range ns.Addresses {
			np := fmt.Sprintf("%s.nameservers.addresses[%d]", p, i)
			if net.ParseIP(a) == nil {
				ck.errorf(np, "%s %q is not an IP address", np, a)
			}
		}
		for i, s := range ns.Search {
			sp := fmt.Sprintf("%s.nameservers.search[%d]", p, i)
			if !isDomain(s) {
				ck.errorf(sp, "%s %q is not a DNS domain", sp, s)
			}
		}
	}
	if in.MTU != 0 && (in.MTU < 68 || in.MTU > 65535) {
		ck.errorf(p+".mtu", "%s.mtu %d is not from 68 to 65535", p, in.MTU)
	}
}

// parseCIDRs parses a comma-separated list of CIDRs, at most one per
// address family, as k3s takes them for dual-stack clusters.
func parseCIDRs(s string) ([]*net.IPNet, []string, error) {
	var nets []*net.IPNet
	var hostBits []string
	fams := map[bool]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		ip, n, err := net.ParseCIDR(part)
		if err != nil {
			return nil, nil, fmt.Errorf("%q is not a CIDR like 10.42.0.0/16", part)
		}
		v4 := ip.To4() != nil
		if fams[v4] {
			return nil, nil, fmt.Errorf("%q: give at most one IPv4 and one IPv6 range", s)
		}
		fams[v4] = true
		if !ip.Equal(n.IP) {
			hostBits = append(hostBits, n.String())
		}
		nets = append(nets, n)
	}
	return nets, hostBits, nil
}

func overlaps(a, b *net.IPNet) bool {
	return a.Contains(b.IP) || b.Contains(a.IP)
}

func parseIPs(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		ip := net.ParseIP(strings.TrimSpace(part))
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP address", strings.TrimSpace(part))
		}
		out = append(out, ip)
	}
	return out, nil
}

// knownDisable are the packaged components k3s lets --disable name.
var knownDisable = []string{"coredns", "servicelb", "traefik", "local-storage", "metrics-server", "runtimes"}

// Packaged says whether disable's entry name is a component k3s packages,
// rather than a manifest: servers must agree on those.
func Packaged(name string) bool { return slices.Contains(knownDisable, name) }

// namesManifest says whether name is a manifest of kubernetes.manifests
// or one write_files writes.
func (ck *checker) namesManifest(name string) bool {
	for _, m := range ck.c.Kubernetes.Manifests {
		if m.Name == name {
			return true
		}
	}
	for _, w := range ck.c.WriteFiles {
		if n, ok := manifestFile(w); ok && n == name {
			return true
		}
	}
	return false
}

func (ck *checker) kubernetes() {
	k := &ck.c.Kubernetes
	const kp = "kubernetes."
	switch k.Role {
	case "server", "agent":
	default:
		ck.errorf(kp+"role", "kubernetes.role %q is not server or agent", k.Role)
	}
	switch k.Distribution {
	case "builtin", "k3s":
	default:
		ck.errorf(kp+"distribution", "kubernetes.distribution %q is not builtin or k3s", k.Distribution)
	}
	for _, t := range []struct{ key, value, file string }{{"token", k.Token, k.TokenFile}, {"agent-token", k.AgentToken, k.AgentTokenFile}} {
		if t.value != "" && t.file != "" {
			ck.errorf(kp+t.key+"-file", "kubernetes.%s and kubernetes.%s-file are both set; keep one", t.key, t.key)
		}
		if t.file != "" && !strings.HasPrefix(t.file, "/") {
			ck.errorf(kp+t.key+"-file", "kubernetes.%s-file %q is relative; give an absolute path", t.key, t.file)
		}
	}
	ck.tokenStrength()
	hasToken := k.Token != "" || k.TokenFile != ""
	agent := k.Role == "agent"
	if agent && (k.AgentToken != "" || k.AgentTokenFile != "") {
		if hasToken {
			ck.add(Warning, kp+"token", []string{kp + "token", kp + "token-file"}, "kubernetes: an agent joins with agent-token and ignores token; keep the server token off agents (it is an admin's)")
		}
		hasToken = true
	}
	if !agent && k.Token != "" && k.Token != redactedText && k.AgentToken == k.Token {
		ck.warnf(kp+"agent-token", "kubernetes.agent-token is the server token: every agent would hold an admin's token; make the agents one of their own with `cairn token generate`")
	}
	if !agent && k.Server != "" && !hasToken {
		ck.add(Error, kp+"token", []string{kp + "server"}, "kubernetes: a server that joins a cluster (server is set) needs token (or token-file); use the first server's token")
	}
	if k.TokenFile != "" {
		for i, w := range ck.c.WriteFiles {
			if m, err := w.Mode(); err == nil && w.Path == k.TokenFile && m&0o004 != 0 {
				p := fmt.Sprintf("write_files[%d]", i)
				ck.add(Warning, p+".permissions", []string{p + ".permissions", p + ".path"}, "%s writes the token file %s readable by every user (mode %04o); give it permissions: \"0600\"", p, w.Path, m.Perm())
			}
		}
	}
	if agent {
		if !hasToken {
			ck.add(Error, kp+"token", []string{kp + "role"}, "kubernetes: an agent needs token (or token-file) to join the cluster, or agent-token (or agent-token-file); use the servers' agent-token, or their token when they have none")
		}
		if k.Server == "" && k.VIP == "" {
			ck.add(Error, kp+"server", []string{kp + "role"}, "kubernetes: an agent needs server (https://host:6443) or vip to find the cluster")
		}
		for _, key := range []string{"datastore-endpoint", "datastore-cafile", "datastore-certfile", "datastore-keyfile", "secrets-encryption"} {
			if ck.set(kp + key) {
				ck.warnf(kp+key, "kubernetes.%s is a server setting; agents ignore it", key)
			}
		}
	}

	// The datastore.
	ds, err := k.Datastore()
	if err != nil {
		ck.errorf(kp+"datastore-endpoint", "kubernetes.datastore-endpoint: %v", err)
	} else if !agent {
		if ds.External() && !hasToken {
			ck.add(Error, kp+"token", []string{kp + "datastore-endpoint"}, "kubernetes: a server with a datastore-endpoint needs token (or token-file): every server reads the cluster's certificates from the datastore with it")
		}
		if ds.Kind == DatastoreSQLite && (k.VIP != "" || k.Server != "") {
			ck.errorf(kp+"datastore-endpoint", "kubernetes.datastore-endpoint: sqlite:// keeps the cluster on this node's disk, so no other server can share it; for several servers use postgres://, mysql:// or etcd (https://host:2379), or drop vip and server for a single server")
		}
		if ds.Kind == DatastoreEmbedded {
			for _, key := range []string{"datastore-cafile", "datastore-certfile", "datastore-keyfile"} {
				if ck.set(kp + key) {
					ck.warnf(kp+key, "kubernetes.%s is set but there is no datastore-endpoint (embedded etcd); it is ignored", key)
				}
			}
		}
	}
	for _, key := range []struct{ name, val string }{
		{"datastore-cafile", k.DatastoreCAFile}, {"datastore-certfile", k.DatastoreCertFile}, {"datastore-keyfile", k.DatastoreKeyFile},
	} {
		if key.val != "" && !strings.HasPrefix(key.val, "/") {
			ck.errorf(kp+key.name, "kubernetes.%s %q is relative; give an absolute path (write it with write_files)", key.name, key.val)
		}
	}
	if (k.DatastoreCertFile == "") != (k.DatastoreKeyFile == "") {
		which, missing := "datastore-certfile", "datastore-keyfile"
		if k.DatastoreCertFile == "" {
			which, missing = missing, which
		}
		ck.errorf(kp+which, "kubernetes.%s is set without kubernetes.%s; a client certificate needs both", which, missing)
	}

	// Address ranges.
	cidrs := func(key, val string) []*net.IPNet {
		nets, hb, err := parseCIDRs(val)
		if err != nil {
			ck.errorf(kp+key, "kubernetes.%s: %v", key, err)
		} else if len(hb) > 0 {
			ck.warnf(kp+key, "kubernetes.%s has host bits set; it is read as %s", key, strings.Join(hb, ","))
		}
		return nets
	}
	clusterNets := cidrs("cluster-cidr", k.ClusterCIDR)
	serviceNets := cidrs("service-cidr", k.ServiceCIDR)
	for _, cn := range clusterNets {
		for _, sn := range serviceNets {
			if overlaps(cn, sn) {
				ck.add(Error, kp+"service-cidr", []string{kp + "service-cidr", kp + "cluster-cidr"},
					"kubernetes.cluster-cidr %s and kubernetes.service-cidr %s overlap; pods and services need separate ranges", cn, sn)
			}
		}
	}
	if k.ClusterDNS == "" {
		ck.errorf(kp+"cluster-dns", "kubernetes.cluster-dns is empty and cannot be derived from service-cidr; set it to an address inside service-cidr")
	} else if dns, err := parseIPs(k.ClusterDNS); err != nil {
		ck.errorf(kp+"cluster-dns", "kubernetes.cluster-dns: %v", err)
	} else if serviceNets != nil {
		for _, ip := range dns {
			in := false
			for _, sn := range serviceNets {
				if sn.Contains(ip) {
					in = true
					if ip.Equal(nthAddress(sn, 1)) {
						ck.add(Error, kp+"cluster-dns", []string{kp + "cluster-dns", kp + "service-cidr"},
							"kubernetes.cluster-dns %s is the first address of service-cidr, which the kubernetes service takes; use another (like the tenth)", ip)
					}
				}
			}
			if !in {
				ck.add(Error, kp+"cluster-dns", []string{kp + "cluster-dns", kp + "service-cidr"},
					"kubernetes.cluster-dns %s is outside kubernetes.service-cidr %s; the DNS service must get an address from the service range", ip, k.ServiceCIDR)
			}
		}
	}

	// The VIP and the server URL.
	nn := ck.c.nodeNetwork()
	if !agent {
		ck.rangesOffNetwork("cluster-cidr", clusterNets, nn)
		ck.rangesOffNetwork("service-cidr", serviceNets, nn)
	}
	switch {
	case k.VIPInterface == "":
	case k.VIP == "" && len(k.LoadBalancerPool) == 0:
		ck.warnf(kp+"vip-interface", "kubernetes.vip-interface is set but neither vip nor loadbalancer-pool is; it is ignored")
	case agent:
		ck.warnf(kp+"vip-interface", "kubernetes.vip-interface is a server setting (servers hold the VIP); agents ignore it")
	}
	if k.VIP != "" {
		ip := net.ParseIP(k.VIP)
		switch {
		case ip == nil:
			ck.errorf(kp+"vip", "kubernetes.vip %q is not an IP address", k.VIP)
		case ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast():
			ck.errorf(kp+"vip", "kubernetes.vip %s cannot be a shared address (unspecified, loopback or multicast)", ip)
		default:
			for _, r := range []struct {
				key  string
				nets []*net.IPNet
			}{{"cluster-cidr", clusterNets}, {"service-cidr", serviceNets}} {
				for _, n := range r.nets {
					if n.Contains(ip) {
						ck.errorf(kp+"vip", "kubernetes.vip %s is inside kubernetes.%s %s; pick an address on the nodes' network", ip, r.key, n)
					}
				}
			}
			if k.NodeIP != "" {
				if ips, err := parseIPs(k.NodeIP); err == nil {
					for _, nip := range ips {
						if nip.Equal(ip) {
							ck.errorf(kp+"vip", "kubernetes.vip %s is also this node's node-ip; the VIP must be an address no node owns", ip)
						}
					}
				}
			}
			if !agent {
				ck.vipOnNetwork(ip, nn)
			}
		}
	}
	ck.vipTimings()
	ck.loadBalancerPool(clusterNets, serviceNets, nn)
	if k.Server != "" {
		u, err := url.Parse(k.Server)
		switch {
		case err != nil || u.Host == "":
			ck.errorf(kp+"server", "kubernetes.server %q is not a URL like https://192.168.1.100:6443", k.Server)
		case u.Scheme != "https":
			ck.errorf(kp+"server", "kubernetes.server %q must use https://", k.Server)
		case u.User != nil:
			ck.errorf(kp+"server", "kubernetes.server must not carry a user name or password; use token")
		default:
			if err := checkHostPort(u.Host); err != nil {
				ck.errorf(kp+"server", "kubernetes.server %q: %v", k.Server, err)
			}
		}
	}

	// Node identity.
	if k.NodeName != "" && !isDNSName(k.NodeName) {
		ck.errorf(kp+"node-name", "kubernetes.node-name %q is not a valid Kubernetes node name (lowercase letters, digits, '-' and '.')", k.NodeName)
	}
	if k.NodeIP != "" {
		if _, err := parseIPs(k.NodeIP); err != nil {
			ck.errorf(kp+"node-ip", "kubernetes.node-ip: %v", err)
		}
	}
	for i, s := range k.TLSSAN {
		p := fmt.Sprintf("%stls-san[%d]", kp, i)
		if !isHost(s) && !(strings.HasPrefix(s, "*.") && isHost(s[2:])) {
			ck.errorf(p, "%s %q is not a DNS name or IP address", p, s)
		}
	}
	for i, l := range k.NodeLabel {
		p := fmt.Sprintf("%snode-label[%d]", kp, i)
		if err := checkLabel(l); err != nil {
			ck.errorf(p, "%s %q %v", p, l, err)
		} else if key, _, _ := strings.Cut(l, "="); kubeletRefuses(key) {
			ck.errorf(p, "%s %q: the kubelet refuses to set labels in the kubernetes.io and k8s.io namespaces other than kubelet.kubernetes.io/, node.kubernetes.io/ and the well-known topology, os, arch and instance-type labels; use a prefix of your own (like example.com/role)", p, l)
		}
	}
	for i, t := range k.NodeTaint {
		p := fmt.Sprintf("%snode-taint[%d]", kp, i)
		if err := checkTaint(t); err != nil {
			ck.errorf(p, "%s %q %v", p, t, err)
		}
	}
	if k.ClusterDomain != "" && !isDNSName(k.ClusterDomain) {
		ck.errorf(kp+"cluster-domain", "kubernetes.cluster-domain %q is not a DNS domain", k.ClusterDomain)
	}
	switch k.FlannelBackend {
	case "", "vxlan", "host-gw", "none":
	default:
		ck.errorf(kp+"flannel-backend", "kubernetes.flannel-backend %q is not one cairn runs: vxlan (the default), host-gw or none (bring your own CNI)", k.FlannelBackend)
	}
	ck.registries()
	if k.FlannelIface != "" && !validIfName(k.FlannelIface) {
		ck.errorf(kp+"flannel-iface", "kubernetes.flannel-iface %q is not an interface name", k.FlannelIface)
	}
	ck.manifests()
	ck.localStorage()
	ck.etcdSnapshots()
	ck.etcdS3()
	for i, d := range k.Disable {
		p := fmt.Sprintf("%sdisable[%d]", kp, i)
		if !slices.Contains(knownDisable, d) && !ck.namesManifest(d) {
			ck.warnf(p, "%s %q is neither a component k3s packages (%s) nor a manifest of kubernetes.manifests or write_files; it is ignored unless a manifest of that name is in %s", p, d, strings.Join(knownDisable, ", "), layout.ManifestsDir)
		}
	}
	for _, a := range []struct {
		key  string
		args []string
	}{
		{"kube-apiserver-arg", k.KubeAPIServerArg}, {"kube-controller-manager-arg", k.KubeControllerManagerArg},
		{"kube-scheduler-arg", k.KubeSchedulerArg}, {"kubelet-arg", k.KubeletArg}, {"kube-proxy-arg", k.KubeProxyArg},
	} {
		for i, arg := range a.args {
			p := fmt.Sprintf("%s%s[%d]", kp, a.key, i)
			name, _, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
			switch {
			case !argNameRe.MatchString(name):
				ck.errorf(p, "%s %q is not a flag as name=value (like v=2)", p, arg)
			case !hasValue:
				ck.errorf(p, "%s %q has no value; write name=value (a switch as %s=true)", p, arg, name)
			}
		}
	}
}

// nthAddress is the range's address i (adding to its last byte only).
func nthAddress(n *net.IPNet, i byte) net.IP {
	ip := slices.Clone(n.IP)
	ip[len(ip)-1] += i
	return ip
}

// checkQualifiedName checks a label or taint key: [prefix/]name.
func checkQualifiedName(key string) error {
	prefix, name, hasPrefix := strings.Cut(key, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	}
	if hasPrefix && !isDNSName(prefix) {
		return fmt.Errorf("has key prefix %q, which is not a DNS subdomain", prefix)
	}
	if name == "" || len(name) > 63 || !qualNameRe.MatchString(name) {
		return fmt.Errorf("has key %q, which is not a Kubernetes label key (at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric, with an optional DNS prefix and '/')", key)
	}
	return nil
}

func checkLabelValue(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 63 || !qualNameRe.MatchString(v) {
		return fmt.Errorf("has value %q, which is not a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric)", v)
	}
	return nil
}

// checkLabel checks a node-label, key=value.
func checkLabel(l string) error {
	key, val, ok := strings.Cut(l, "=")
	if !ok {
		return fmt.Errorf("is not key=value")
	}
	if err := checkQualifiedName(key); err != nil {
		return err
	}
	return checkLabelValue(val)
}

// checkTaint checks a node-taint, key=value:Effect (or key:Effect).
func checkTaint(t string) error {
	i := strings.LastIndex(t, ":")
	if i < 0 {
		return fmt.Errorf("is not key=value:Effect with Effect NoSchedule, PreferNoSchedule or NoExecute")
	}
	kv, effect := t[:i], t[i+1:]
	switch effect {
	case "NoSchedule", "PreferNoSchedule", "NoExecute":
	default:
		return fmt.Errorf("has effect %q; use NoSchedule, PreferNoSchedule or NoExecute", effect)
	}
	key, val, _ := strings.Cut(kv, "=")
	if err := checkQualifiedName(key); err != nil {
		return err
	}
	return checkLabelValue(val)
}

// tokenStrength refuses a token, or an agent-token, given in the config
// (or by a write_files entry writing its file) that is malformed or weaker
// than join.MinStrength: the servers' CA proof and the datastore record
// make guessing cost an Argon2id run, which does not save a token a
// dictionary holds.
func (ck *checker) tokenStrength() {
	k := &ck.c.Kubernetes
	for _, t := range []struct{ key, value, file, who string }{
		{"token", k.Token, k.TokenFile, "is every server and may mint admin credentials"},
		{"agent-token", k.AgentToken, k.AgentTokenFile, "may join machines to the cluster"},
	} {
		path, value := "kubernetes."+t.key, t.value
		at := []string{path}
		if value == "" && t.file != "" {
			for i, w := range slices.Backward(ck.c.WriteFiles) {
				if b, err := w.Decode(); err == nil && w.Path == t.file {
					p := fmt.Sprintf("write_files[%d]", len(ck.c.WriteFiles)-1-i)
					value, at = strings.TrimSpace(string(b)), []string{p + ".content", p}
					break
				}
			}
		}
		if value == "" || value == redactedText {
			continue // a printed config loads again
		}
		tok, err := clusterjoin.ParseToken(value)
		if err != nil {
			ck.add(Error, path, at, "%s: %v", path, err)
			continue
		}
		if bits := clusterjoin.Strength(tok.Secret); bits < clusterjoin.MinStrength {
			ck.add(Error, path, at, "%s is too weak: about %.0f bits of estimated strength, fewer than %d, and whoever guesses it %s; make one with `cairn token generate`",
				path, bits, clusterjoin.MinStrength, t.who)
		}
	}
}
