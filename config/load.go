package config

import (
	"fmt"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// Defaults filled by Load.
const (
	DefaultRole          = "server"
	DefaultClusterCIDR   = "10.42.0.0/16"
	DefaultServiceCIDR   = "10.43.0.0/16"
	DefaultClusterDNS    = "10.43.0.10"
	DefaultClusterDomain = "cluster.local"
	// DefaultFlannelBackend is k3s's default pod network backend.
	DefaultFlannelBackend = "vxlan"
	DefaultDistribution   = "builtin"
	DefaultPermissions    = "0644"
	DefaultOwner          = "root:root"
	// APIServerPort is where servers serve the Kubernetes API, and the
	// port of the default server URL https://<vip>:6443.
	APIServerPort = 6443
)

// Load parses every source, merges them in order (later sources win per
// key, keys keep the location of the source that set them), fills defaults
// and validates the result. Nothing may be applied when diags.HasErrors();
// cfg is nil then.
//
// Merging: top-level keys replace earlier ones, except write_files (entries
// are appended), sysctl (merged per sysctl) and kubernetes (merged per key).
// network is replaced as a whole.
func Load(srcs ...Source) (cfg *Config, diags Diagnostics) {
	name := ""
	if len(srcs) > 0 {
		name = srcs[len(srcs)-1].Name
	}
	defer recoverInto(name, &cfg, &diags)
	var parsed []*Config
	var files []string
	var kept collector
	for _, s := range srcs {
		files = append(files, s.Name)
		c, col := parse(s)
		diags = append(diags, col.diags...)
		kept.dropped += col.dropped
		kept.droppedErr = kept.droppedErr || col.droppedErr
		parsed = append(parsed, c)
	}
	// Validation goes on after parse errors, over what did decode, so
	// that one run reports everything; a check about a key that already
	// has a parse error (or a key above or below it) is left out.
	var bad []string
	for _, d := range diags {
		if d.Severity == Error {
			bad = append(bad, d.Path)
		}
	}
	cfg = merge(parsed)
	cfg.files = files
	cfg.fillDefaults()
	vc := cfg.validate()
	for _, d := range vc.diags {
		if !related(d.Path, bad) {
			diags = append(diags, d)
		}
	}
	if len(bad) == 0 {
		kept.dropped += vc.dropped
		kept.droppedErr = kept.droppedErr || vc.droppedErr
	}
	sortDiags(diags, files)
	diags = capped(diags, kept.dropped, kept.droppedErr)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// merge combines parsed documents in order; see Load.
func merge(cs []*Config) *Config {
	out := &Config{locs: map[string]pos{}}
	ov := reflect.ValueOf(out).Elem()
	top := fieldsOf(reflect.TypeOf(Config{}))
	kfields := fieldsOf(reflect.TypeOf(Kubernetes{}))
	for _, c := range cs {
		cv := reflect.ValueOf(c).Elem()
		for key, idx := range top {
			p, set := c.locs[key]
			if !set {
				continue
			}
			switch key {
			case "write_files":
				base := len(out.WriteFiles)
				out.WriteFiles = append(out.WriteFiles, c.WriteFiles...)
				out.locs[key] = p
				for lk, lp := range c.locs {
					if rest, ok := strings.CutPrefix(lk, "write_files["); ok {
						n, tail, _ := strings.Cut(rest, "]")
						i, _ := strconv.Atoi(n)
						out.locs[fmt.Sprintf("write_files[%d]%s", base+i, tail)] = lp
					}
				}
			case "sysctl":
				out.locs[key] = p
				if c.Sysctl == nil {
					out.Sysctl = nil
					dropPrefix(out.locs, key)
					out.locs[key] = p
					continue
				}
				if out.Sysctl == nil {
					out.Sysctl = map[string]string{}
				}
				for k, v := range c.Sysctl {
					out.Sysctl[k] = v
					if lp, ok := c.locs["sysctl."+k]; ok {
						out.locs["sysctl."+k] = lp
					}
				}
			case "kubernetes":
				out.locs[key] = p
				kv := reflect.ValueOf(&out.Kubernetes).Elem()
				ckv := reflect.ValueOf(&c.Kubernetes).Elem()
				for kk, kidx := range kfields {
					path := "kubernetes." + kk
					if _, ok := c.locs[path]; !ok {
						continue
					}
					kv.FieldByIndex(kidx).Set(ckv.FieldByIndex(kidx))
					dropPrefix(out.locs, path)
					copyPrefix(out.locs, c.locs, path)
				}
			default:
				ov.FieldByIndex(idx).Set(cv.FieldByIndex(idx))
				dropPrefix(out.locs, key)
				copyPrefix(out.locs, c.locs, key)
			}
		}
	}
	return out
}

// related reports whether path is one of paths, under one, or above one.
func related(path string, paths []string) bool {
	for _, p := range paths {
		if p == "" || path == "" || underPrefix(path, p) || underPrefix(p, path) {
			return true
		}
	}
	return false
}

func underPrefix(k, prefix string) bool {
	return k == prefix || strings.HasPrefix(k, prefix+".") || strings.HasPrefix(k, prefix+"[")
}

func dropPrefix(m map[string]pos, prefix string) {
	for k := range m {
		if underPrefix(k, prefix) {
			delete(m, k)
		}
	}
}

func copyPrefix(dst, src map[string]pos, prefix string) {
	for k, v := range src {
		if underPrefix(k, prefix) {
			dst[k] = v
		}
	}
}

// fillDefaults sets every default Load promises.
func (c *Config) fillDefaults() {
	k := &c.Kubernetes
	if k.Role == "" {
		k.Role = DefaultRole
	}
	if k.ClusterCIDR == "" {
		k.ClusterCIDR = DefaultClusterCIDR
	}
	if k.ServiceCIDR == "" {
		k.ServiceCIDR = DefaultServiceCIDR
	}
	if k.ClusterDNS == "" {
		// The tenth address of the service range, as k3s picks it
		// (DefaultClusterDNS in DefaultServiceCIDR).
		k.ClusterDNS = tenthAddress(k.ServiceCIDR)
	}
	if k.ClusterDomain == "" {
		k.ClusterDomain = DefaultClusterDomain
	}
	if k.Distribution == "" {
		k.Distribution = DefaultDistribution
	}
	if k.FlannelBackend == "" {
		k.FlannelBackend = DefaultFlannelBackend
	}
	if k.PrivateRegistry == "" && k.Registries == nil {
		// k3s reads its registries file when it exists; cairn when the
		// config writes it.
		for _, w := range c.WriteFiles {
			if w.Path == DefaultPrivateRegistry {
				k.PrivateRegistry = DefaultPrivateRegistry
			}
		}
	}
	if k.Server == "" && k.VIP != "" && k.Role == "agent" {
		k.Server = "https://" + net.JoinHostPort(k.VIP, strconv.Itoa(APIServerPort))
	}
	for i := range c.WriteFiles {
		w := &c.WriteFiles[i]
		if w.Encoding == "" {
			w.Encoding = "text"
		}
		if w.Permissions == "" {
			w.Permissions = DefaultPermissions
		}
		if w.Owner == "" {
			w.Owner = DefaultOwner
		}
	}
}

// tenthAddress returns the service range's tenth address (10.43.0.10 in
// 10.43.0.0/16) for the first range of a comma-separated list, or "".
func tenthAddress(cidrs string) string {
	first, _, _ := strings.Cut(cidrs, ",")
	_, n, err := net.ParseCIDR(strings.TrimSpace(first))
	if err != nil {
		return ""
	}
	ip := nthAddress(n, 10)
	if !n.Contains(ip) {
		return ""
	}
	return ip.String()
}

// Sources names the sources the config was loaded from, in order.
func (c *Config) Sources() []string {
	return append([]string(nil), c.files...)
}

// JoinToken returns the cluster token: token itself, or the content of
// token-file with surrounding whitespace removed. It returns "" and no
// error when neither is set (a first server generates its token).
func (k *Kubernetes) JoinToken() (string, error) {
	if k.Token != "" {
		return k.Token, nil
	}
	if k.TokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(k.TokenFile)
	if err != nil {
		return "", fmt.Errorf("kubernetes.token-file: reading the token: %w; write it with write_files or set kubernetes.token", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("kubernetes.token-file %s is empty; put the cluster token in it", k.TokenFile)
	}
	return t, nil
}
